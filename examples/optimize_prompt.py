"""Prompt search with a simulated LLM: `@trace.optimize` finds the settings that label reviews right.

Run: .venv/bin/python examples/optimize_prompt.py
The model and the proposer are stand-ins (deterministic, 20 ms per call), so it runs offline. With
OTEL_EXPORTER_OTLP_ENDPOINT set, for instance to a running opto-dashboard, the search's spans
(search, depth, candidate, every model run) are exported as it runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import opto
from opto import trace

TRAIN = [
    ("The battery lasts forever, love it", "positive"),
    ("Broke after two days", "negative"),
    ("Not bad at all", "positive"),
    ("I would not buy it again", "negative"),
    ("Arrived late but works fine", "positive"),
    ("Worst purchase this year", "negative"),
]
ONE_WORD = " Answer with one word: positive or negative."

instructions = trace.param("Classify the review.", name="instructions", description="the system prompt")
few_shot = trace.param(0, name="few_shot", description="labelled examples shown", choices=[0, 2, 4])
temperature = trace.param(0.9, name="temperature", choices=[0.9, 0.5, 0.0])


async def simulated_llm(system: str, shots: int, heat: float, review: str) -> str:
    """A stand-in model: keeps to the format only when told, reads negation only from examples, erratic when hot."""
    await asyncio.sleep(0.02)
    text = review.lower()
    label = "negative" if any(w in text for w in ("broke", "worst", "not", "late")) else "positive"
    if (shots >= 2 and "not bad" in text) or (shots >= 4 and " but " in text):
        label = "positive"
    if heat > 0.5 and len(review) % 3 == 0:
        label = "positive" if label == "negative" else "negative"
    return label if ONE_WORD.strip() in system else f"I think this review is {label}."


@trace.optimize(strategy="async_beam_search", beam_width=3, num_proposals=3, max_depth=4, max_concurrent=16)
async def classify(example: tuple[str, str]) -> str:
    review, _ = example
    return await simulated_llm(instructions.value, few_shot.value, temperature.value, review)


def guide(example: tuple[str, str], output: str) -> tuple[float, str]:
    review, expected = example
    if output not in ("positive", "negative"):
        return 0.0, f"answer {output!r} is not a single label"
    if output != expected:
        return 0.0, f"labelled {review!r} {output}, expected {expected}"
    return 1.0, "right"


async def propose(params: dict[str, Any], feedback: tuple[trace.Evaluation, ...]) -> list[dict[str, Any]]:
    """A stand-in for an LLM optimizer: reads the feedback and suggests edits."""
    await asyncio.sleep(0.02)
    notes = " ".join(str(e.feedback) for e in feedback)
    edits: list[dict[str, Any]] = []
    if "not a single label" in notes:
        edits.append({"instructions": params["instructions"] + ONE_WORD})
    if "expected positive" in notes:
        edits.append({"few_shot": min(params["few_shot"] + 2, 4)})
    if params["temperature"] > 0:
        edits.append({"temperature": round(params["temperature"] - 0.45, 2)})
    return edits


async def main() -> None:
    opto.configure(service_name="optimize-prompt-example")
    print("before:", await classify(("Not bad at all", "?")))
    result = await classify.optimize(TRAIN, guide=guide, proposer=propose)
    print(f"evaluated {len(result.candidates)} candidates; best score by depth: {result.history}")
    for name, value in result.best_params.items():
        print(f"  {name} = {value!r}")
    answers = await asyncio.gather(*(classify((r, "?")) for r in ["Not bad at all", "Late, but fine", "It broke"]))
    print("after:", answers)


if __name__ == "__main__":
    asyncio.run(main())
