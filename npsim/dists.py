"""Probability distributions for service times, think times and link latencies.

A small registry mapped from YAML (never ``eval``): ``{dist: exponential, mean: 5ms}``.
Every distribution knows its mean and variance, so a scenario can be checked for
utilisation >= 1 before it runs, and queueing formulas can be evaluated from it.

Samplers draw in batches from a component's own ``numpy.random.Generator``: one call to
numpy per few thousand samples keeps the per-request cost near a list lookup, and the
stream of values depends only on that component's generator.
"""

from __future__ import annotations

import io
import math
from array import array
from collections.abc import Callable, Iterator
from itertools import chain, islice, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from npsim.units import Seconds, format_duration, parse_duration

if TYPE_CHECKING:  # numpy is imported when a sampler is made: loading a scenario needs none
    import numpy as np

Sampler = Callable[[], float]
BATCH = 4096
FIRST_BATCH = 32


def batched(draw: Callable[[int], np.ndarray]) -> Sampler:
    """A zero-argument sampler over batches of ``draw(size)``.

    One numpy call per batch, values kept in an ``array.array`` (8 bytes each, not a
    Python float object) and handed out by a C-level iterator. Batches start at
    ``FIRST_BATCH`` and double up to ``BATCH``: a component that draws little (one of
    10,000 pods, one of a million links) holds little.
    """

    def batches() -> Iterator[array]:
        import numpy as np

        size = FIRST_BATCH
        while True:
            values = np.ascontiguousarray(draw(size))
            buffer = array("q" if values.dtype.kind in "iu" else "d")
            buffer.frombytes(values.astype(buffer.typecode).tobytes())
            del values  # not kept by the suspended frame: the buffer holds the draws
            yield buffer
            size = min(size * 2, BATCH)

    return chain.from_iterable(batches()).__next__


def next_values(sample: Sampler, k: int) -> list[float]:
    """The next ``k`` values of ``sample``, the same ones ``k`` calls would give. A
    :func:`batched` sampler is the bound ``__next__`` of a chain over its batches: its
    values are taken in one C-level pass over that chain; any other sampler is called
    ``k`` times."""
    values = getattr(sample, "__self__", None)
    if isinstance(values, chain):
        return list(islice(values, k))
    return [sample() for _ in range(k)]


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Sampler:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.dist}(mean {format_duration(self.mean)})"  # type: ignore[attr-defined]


class Exponential(_Dist):
    dist: Literal["exponential"]
    mean_: Seconds = Field(alias="mean", gt=0)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return self.mean_**2

    def sampler(self, rng: np.random.Generator) -> Sampler:
        scale = self.mean_
        return batched(lambda n: rng.exponential(scale, n))


class Constant(_Dist):
    dist: Literal["constant"]
    value: Seconds

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sampler(self, rng: np.random.Generator) -> Sampler:
        # a C-level callable that returns the value, not a Python function: no frame
        # per draw (a zero network or kube-proxy cost is drawn once per request)
        return repeat(self.value).__next__


MAX_CV = 1000.0  # far past any measured latency (a cv of 1000 is sigma 3.7 in log space)
MAX_SAMPLES = 1_000_000  # an empirical distribution's values (inline or in its file)


class LogNormal(_Dist):
    """Log-normal given its mean and coefficient of variation (what a user measures)."""

    dist: Literal["lognormal"]
    mean_: Seconds = Field(alias="mean", gt=0)
    # bounded: an infinite cv made every sample NaN or inf, 1e300 overflowed at run time
    cv: float = Field(gt=0, le=MAX_CV)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_) ** 2

    def sampler(self, rng: np.random.Generator) -> Sampler:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean_) - sigma2 / 2
        sigma = math.sqrt(sigma2)
        return batched(lambda n: rng.lognormal(mu, sigma, n))


def _too_many_samples(count: int | None) -> str:
    """Each sample is kept (and written into scenario.resolved.yaml): 31 million of them
    took 2 GB to read and the run died writing its result."""
    many = f"{count:,} samples, " if count is not None else ""
    return (f"{many}more than the {MAX_SAMPLES:,} an empirical distribution may hold; give "
            "a random subset of them")


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: Seconds
    high: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sampler(self, rng: np.random.Generator) -> Sampler:
        low, high = self.low, self.high
        return batched(lambda n: rng.uniform(low, high, n))


class Empirical(_Dist):
    """Resamples measured values (bootstrap), given inline or as a file of numbers.

    A file holds one number per line (blank lines and ``#`` comments skipped) in the
    ``unit`` given next to it, because measurement tools print bare numbers.
    """

    dist: Literal["empirical"]
    samples: tuple[Seconds, ...] = ()
    file: str | None = None
    unit: Literal["ns", "us", "ms", "s", "m", "min", "h"] = "s"

    @model_validator(mode="after")
    def _one_source(self) -> Empirical:
        if bool(self.samples) == bool(self.file):
            raise ValueError("give exactly one of 'samples' (a list of durations) or 'file'")
        if self.file is None and any(x < 0 for x in self.samples):
            raise ValueError("samples must be >= 0")
        if len(self.samples) > MAX_SAMPLES:
            raise ValueError(_too_many_samples(len(self.samples)))
        return self

    def resolved(self, base_dir: Path, read: Callable[[str], str] | None = None) -> Empirical:
        """This distribution with a file's values read in (paths relative to the scenario).

        ``read(name)`` returns the file's text (the loader passes its guarded reader:
        regular files in the scenario's folder, size-capped)."""
        if not self.file:
            return self
        path = (base_dir / self.file).resolve()
        scale = parse_duration(f"1{self.unit}")
        values: list[float] = []
        content = read(self.file) if read is not None else path.read_text()
        for lineno, line in enumerate(io.StringIO(content), start=1):  # no list of lines
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            if len(values) == MAX_SAMPLES:
                raise ValueError(f"{path}:{lineno}: {_too_many_samples(None)}")
            try:
                value = float(text) * scale
            except ValueError:
                # the line is not quoted: the file may not be what the user thought it was
                raise ValueError(f"{path}:{lineno}: not a number (one value per line, in "
                                 f"{self.unit})") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{path}:{lineno}: a duration must be finite and >= 0")
            values.append(value)
        if not values:
            raise ValueError(f"{path}: no samples in the file")
        return Empirical(dist="empirical", samples=tuple(values), unit="s")

    @property
    def mean(self) -> float:
        return math.fsum(self.samples) / len(self.samples)

    @property
    def variance(self) -> float:
        mean = self.mean
        return math.fsum((x - mean) ** 2 for x in self.samples) / len(self.samples)

    def sampler(self, rng: np.random.Generator) -> Sampler:
        import numpy as np

        values = np.asarray(self.samples, dtype=float)
        return batched(lambda n: rng.choice(values, n))


REGISTRY: dict[str, type[_Dist]] = {
    "exponential": Exponential,
    "constant": Constant,
    "lognormal": LogNormal,
    "uniform": Uniform,
    "empirical": Empirical,
}


def _shorthand(value: Any) -> Any:
    """A bare duration means a constant: ``serviceTime: 5ms``."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    known = ", ".join(REGISTRY)
    if isinstance(value, dict) and not isinstance(value.get("dist", ""), str):
        raise ValueError(f"'dist' must be a name, one of {known}")
    if isinstance(value, dict) and "dist" not in value:
        raise ValueError(f"missing 'dist': name one of {known}, "
                         "or give a bare duration such as 5ms for a constant")
    if isinstance(value, dict) and value["dist"] not in REGISTRY:
        raise ValueError(f"unknown distribution {value['dist']!r}; known: {known}")
    return value


Distribution = Annotated[
    Exponential | Constant | LogNormal | Uniform | Empirical,
    Field(discriminator="dist"),
    BeforeValidator(_shorthand),
]
