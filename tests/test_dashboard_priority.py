"""Requests before ingest (`priority.py`): ingest steps wait for the HTTP requests in flight, at most
`MAX_WAIT_S`, one step at a time; the middleware counts each GET until its answer ends, and not
POSTs (OTLP's, which are ingest: counted, each would wait for itself)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opto_dashboard.priority import MAX_WAIT_S, RequestsFirst, RequestsFirstMiddleware


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


async def test_requests_that_never_end_slow_ingest_down_but_do_not_stop_it() -> None:
    requests = RequestsFirst()
    with requests.answering():
        steps = [asyncio.create_task(requests.turn()) for _ in range(3)]
        done, waiting = await asyncio.wait(steps, timeout=MAX_WAIT_S * 20, return_when=asyncio.FIRST_COMPLETED)
        await turns_of_the_loop()
        # One step after each wait: the three that waited together do not all go at once.
        assert len(done) == 1 and all(not s.done() for s in waiting)
        await asyncio.wait_for(asyncio.gather(*steps), MAX_WAIT_S * 40)


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
