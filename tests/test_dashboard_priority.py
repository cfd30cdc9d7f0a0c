"""Requests before ingest (`priority.py`): ingest steps wait for the HTTP requests in flight, for
the first `MAX_WAIT_S` of the newest, one step at a time; the middleware counts each GET until its answer ends, and not
POSTs (OTLP's, which are ingest: counted, each would wait for itself)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opto_dashboard.priority import BEHIND_S, MAX_WAIT_S, RequestsFirst, RequestsFirstMiddleware


async def turns_of_the_loop(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_with_no_request_in_flight_ingest_goes_on_at_once() -> None:
    requests = RequestsFirst()
    await asyncio.wait_for(requests.turn(), MAX_WAIT_S / 2)


async def test_an_ingest_step_waits_for_the_request_in_flight() -> None:
    requests = RequestsFirst()
    with requests.answering():
        step = asyncio.create_task(requests.turn())
        await turns_of_the_loop()
        assert not step.done()
    await asyncio.wait_for(step, MAX_WAIT_S / 2)  # the answer's end lets it go, not the time limit


async def test_a_request_that_never_ends_holds_ingest_for_max_wait_s_from_its_start_only() -> None:
    requests = RequestsFirst()
    loop = asyncio.get_running_loop()
    with requests.answering():  # a slow client reading a big answer: in flight for good
        started = loop.time()
        await asyncio.wait_for(requests.turn(), MAX_WAIT_S * 20)
        assert loop.time() - started >= MAX_WAIT_S * 0.9  # held back for the request's first MAX_WAIT_S
        # From then on steps go on: 20 of them (20 * MAX_WAIT_S if each waited again).
        await asyncio.wait_for(asyncio.gather(*(requests.turn() for _ in range(20))), MAX_WAIT_S * 4)


async def test_after_ingests_own_time_a_new_request_holds_the_steps_again() -> None:
    requests = RequestsFirst()
    with requests.answering():
        await asyncio.wait_for(requests.turn(), MAX_WAIT_S * 20)  # held back MAX_WAIT_S
        await asyncio.wait_for(requests.turn(), MAX_WAIT_S / 2)  # then ingest's own MAX_WAIT_S
        await asyncio.sleep(MAX_WAIT_S)  # the policy is in time: let ingest's own time pass
        with requests.answering():
            step = asyncio.create_task(requests.turn())
            await turns_of_the_loop()
            assert not step.done()
        await asyncio.wait_for(step, MAX_WAIT_S * 20)


async def test_requests_that_keep_coming_take_at_most_half_of_ingests_time() -> None:
    """Overlapping requests, so one is always in flight and the newest is always young: steps
    still go on (one every MAX_WAIT_S each if every step waited its full MAX_WAIT_S)."""
    requests = RequestsFirst()
    stop = asyncio.Event()

    async def request() -> None:
        with requests.answering():
            await asyncio.sleep(MAX_WAIT_S / 2)

    async def client() -> None:
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            pending.add(asyncio.create_task(request()))
            await asyncio.sleep(MAX_WAIT_S / 5)
        await asyncio.gather(*pending)

    asking = asyncio.create_task(client())
    await turns_of_the_loop()
    try:
        await asyncio.wait_for(asyncio.gather(*(requests.turn() for _ in range(40))), MAX_WAIT_S * 4)
        assert requests.in_flight  # the requests were still coming
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.shield(asking), MAX_WAIT_S * 20)


async def test_steps_that_waited_together_pass_one_per_turn_of_the_loop() -> None:
    requests = RequestsFirst()
    with requests.answering():
        steps = [asyncio.create_task(requests.turn()) for _ in range(3)]
        await turns_of_the_loop()
        assert not any(s.done() for s in steps)
    # The answer's end lets them go one after another, so a request that arrives meanwhile waits
    # for one step at most, not for every step that waited.
    done_after_each_turn: list[int] = []
    while len(done_after_each_turn) < 50 and not all(s.done() for s in steps):
        await asyncio.sleep(0)
        done_after_each_turn.append(sum(s.done() for s in steps))
    assert done_after_each_turn[-1] == 3
    assert all(b - a <= 1 for a, b in zip([0, *done_after_each_turn], done_after_each_turn, strict=False))


async def test_the_middleware_counts_http_requests_until_their_answer_ends() -> None:
    requests = RequestsFirst()

    async def seen(request: Request) -> JSONResponse:
        return JSONResponse({"in_flight": requests.in_flight})

    app = Starlette(routes=[Route("/seen", seen)], middleware=[Middleware(RequestsFirstMiddleware, requests=requests)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        answers = await asyncio.gather(*(client.get("/seen") for _ in range(3)))
    assert all(a.json()["in_flight"] >= 1 for a in answers)
    assert requests.in_flight == 0
    await asyncio.wait_for(requests.turn(), MAX_WAIT_S / 2)


async def test_a_post_is_ingest_not_a_request_to_put_first() -> None:
    requests = RequestsFirst()

    async def post(request: Request) -> JSONResponse:
        await asyncio.wait_for(requests.turn(), MAX_WAIT_S / 2)  # as OTLP's door does, through the pipeline
        return JSONResponse({"in_flight": requests.in_flight})

    app = Starlette(routes=[Route("/v1/traces", post, methods=["POST"])], middleware=[Middleware(RequestsFirstMiddleware, requests=requests)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        assert (await client.post("/v1/traces", content=b"")).json() == {"in_flight": 0}


async def test_a_failed_request_is_no_longer_counted() -> None:
    requests = RequestsFirst()

    async def fails(request: Request) -> JSONResponse:
        raise RuntimeError("broken route")

    app = Starlette(routes=[Route("/fails", fails)], middleware=[Middleware(RequestsFirstMiddleware, requests=requests)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        assert (await client.get("/fails")).status_code == 500
    assert requests.in_flight == 0


async def test_while_an_sdk_is_behind_ingest_steps_never_wait() -> None:
    requests = RequestsFirst()
    requests.behind()
    with requests.answering():
        await asyncio.wait_for(asyncio.gather(*(requests.turn() for _ in range(20))), MAX_WAIT_S / 2)


async def test_while_an_sdk_is_behind_a_request_waits_up_to_max_wait_s_uncounted_then_is_answered() -> None:
    requests = RequestsFirst()
    loop = asyncio.get_running_loop()

    async def seen(request: Request) -> JSONResponse:
        return JSONResponse({"in_flight": requests.in_flight})

    app = Starlette(routes=[Route("/seen", seen)], middleware=[Middleware(RequestsFirstMiddleware, requests=requests)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        await asyncio.wait_for(client.get("/seen"), MAX_WAIT_S / 2)  # nobody behind: answered at once
        requests.behind()
        started = loop.time()
        asked = asyncio.create_task(client.get("/seen"))
        await turns_of_the_loop()
        assert not asked.done() and requests.in_flight == 0  # waiting, and not holding ingest back
        assert (await asyncio.wait_for(asked, BEHIND_S * 4)).json() == {"in_flight": 1}
        assert MAX_WAIT_S * 0.9 <= loop.time() - started  # it waited MAX_WAIT_S, not until ingest caught up
