"""What to do next, from counts of what the warehouse holds: the Overview's buttons.

Each step is (label, action): a job's argv (started on the Jobs page) or a page name.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    label: str
    why: str
    job: tuple[str, ...] | None = None   # `hashtags ...` arguments
    page: str | None = None              # or a dashboard page to open


def next_steps(*, images: int, featured: int, scored: int, flagged: int, models: int, evaluated: int,
               few_words: int) -> list[Step]:
    """The useful next steps in pipeline order (the first is the most pressing)."""
    if images == 0:
        return [Step("Run the demo pipeline", "no images yet: import the bundled demo photos and run every step",
                     job=("demo",))]
    steps: list[Step] = []
    if featured < images:
        steps.append(Step("Compute features", f"{images - featured} images have no CNN features yet",
                          job=("features",)))
    elif scored < images:
        steps.append(Step("Score outliers", f"{images - scored} images have no outlier scores yet",
                          job=("outliers",)))
    if flagged:
        steps.append(Step(f"Review {flagged} flagged images", "outlier detectors flagged them; nobody has "
                          "looked yet", page="review"))
    if featured and models == 0:
        steps.append(Step("Train models", "no trained model yet", job=("train",)))
    elif models and evaluated < models:
        steps.append(Step("Evaluate models", f"{models - evaluated} models have no evaluation yet",
                          job=("evaluate",)))
    if few_words:
        steps.append(Step("Collect more images", f"{few_words} active words have too few usable images",
                          job=("scrape-images",)))
    return steps
