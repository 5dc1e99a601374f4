"""Private bounds of a numeric column: where its values lie, released with pure epsilon-DP.

A generator under ``dp=`` clips each numeric column to its bounds and lays its histograms over
them, so the bounds must not be the data's minimum and maximum (one patient's extreme value
would be released exactly). :func:`private_bounds` releases them with no range known
beforehand, in three draws of the exponential mechanism (McSherry and Talwar 2007) over public
candidates on a signed geometric grid, as the private quantiles of Smith (2011) do over a known
range and the unbounded quantile estimation of Durfee (2023) does with geometric candidates:

1. **centre**: the octave (``[2**k, 2**(k+1))``, its negative mirror, or ``[0, 2**-10)``) that
   with its two neighbours holds the most values, scored by that count, under a public prior
   that favours typical magnitudes (``2**-7`` to ``2**17``: each octave beyond costs a factor
   ``exp(-0.5)``), which keeps the centre among plausible values when the budget is too small
   for the counts to tell;
2. **upper bound**: a candidate at or above the centre's lower edge, on quarter-octave steps
   scaled to the centre (``s * 2**(j/4)``, from ``s/8`` to ``s * 2**20``, their mirrors and 0;
   ``s`` the centre's larger edge in magnitude), scored ``-(values above it) - penalty/epsilon_i
   * (steps from the centre)``;
3. **lower bound**: the mirror image, from the centre's upper edge down; skipped when the
   lower bound is public (a survival time's 0).

Without the penalty every candidate above the largest value would score the same and the draw
would wander to the end of the grid, the failure of the exponential mechanism on an unknown
range (smartnoise's "could not find bounds" is the failure of a thresholded histogram on it).
The penalty is a public geometric prior: each step past the data costs a factor
``exp(-penalty)``, so a bound overshoots the data by a geometric number of quarter octaves
(mean ``1 / (exp(penalty) - 1)``), and inside the data a step is taken when it brings at least
``penalty / epsilon_i`` values. ``penalty = max(0.25, 20 * epsilon_i)``: 20 values a step once
the budget allows it, a looser prior when it is small (a bound too wide by a factor of two
costs a generator less than one that clips the tail of the column). Crossing 0 costs a further
factor ``exp(-3)``: most clinical measurements are non-negative, and a lower bound below 0
would let a generator emit negative counts; a column with a real negative tail still crosses
when that tail outweighs it.

Privacy guarantee
-----------------
Each score is a count of values (or minus one) plus a term that depends only on public
quantities (the candidates, epsilon, the earlier draws). Adding or removing one patient's row
changes every count by at most 1, and all counts of one draw in the same direction, so each
draw, with probability proportional to ``exp(epsilon_i * score)`` (monotone scores need no
factor 1/2), is (epsilon_i, 0)-DP for add/remove neighbours; the three compose adaptively to
(epsilon, 0)-DP, epsilon the sum of their shares. Missing values are left aside (whether a value
is missing is not released here). Values beyond the grid (magnitudes above ``2**40``) count in its
end octaves, whose edges then clip them: a column of such numbers needs its bounds declared.

Accuracy on the built-in cohort (300 draws per column): with 4,427 rows and epsilon 0.014 per
column (epsilon 1, a tenth of it shared by the seven numeric columns) the released range holds
a median 94.5-100 % of the values of the six non-negative columns and 68 % of the signed
``ipssm_score`` (its negative tail is clipped), and is more than ten times the data's range in
at most 3.3 % of the draws; with 800 rows at epsilon 5 (0.071 per column), 85-99 % (47 % for
``ipssm_score``). With 800 rows and epsilon 1 (0.014 per column) every count the mechanism sees
is within its noise: the range is then more than ten times the data's in 7-25 % of the draws
and often misses most of it. Declare the bounds when the budget is that small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsynth.core.privacy.mechanisms import exponential_mechanism

#: Octave edges of the centre, ``±2**k`` for k in this range, and 0.
LOWEST_OCTAVE, HIGHEST_OCTAVE = -10, 40
#: Candidate bounds per octave, and their span around the centre's scale ``s``
#: (from ``s * 2**-3`` to ``s * 2**20``, in octaves).
STEPS_PER_OCTAVE = 4
BELOW_CENTRE, ABOVE_CENTRE = 3, 20
#: Values per step that a bound's prior asks for once the budget allows it, and the loosest
#: prior (see the module docstring).
VALUES_PER_STEP, MIN_PENALTY = 20.0, 0.25
#: Octaves of typical magnitudes (about 0.008 to 131,072) and the prior cost of each octave by
#: which a centre lies outside them (in units of log-probability).
TYPICAL_OCTAVES, CENTRE_PRIOR = (-7, 17), 0.5
#: Extra prior cost of a bound that crosses 0 (in units of log-probability): many clinical
#: measurements are non-negative, and a bound below 0 would let a generator emit negative ones.
ZERO_CROSSING = 3.0


@dataclass(frozen=True)
class BoundsRelease:
    """Released bounds of one column and how the budget was split.

    Parameters
    ----------
    low, high : float
        The bounds, ``low <= high``.
    epsilon_centre, epsilon_high, epsilon_low : float
        Epsilon of each draw (``epsilon_low`` is 0 when the lower bound was public).
    """

    low: float
    high: float
    epsilon_centre: float
    epsilon_high: float
    epsilon_low: float

    @property
    def epsilon(self) -> float:
        """Total epsilon of the release."""
        return self.epsilon_centre + self.epsilon_high + self.epsilon_low


def octave_edges() -> np.ndarray:
    """Edges of the centre's candidate intervals: ``-2**40 ... -2**-10, 0, 2**-10 ... 2**40``."""
    magnitudes = 2.0 ** np.arange(LOWEST_OCTAVE, HIGHEST_OCTAVE + 1)
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes])


def centre_scores(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Count of ``values`` in each interval of ``edges`` and its two neighbours (one per
    interval); a value beyond the edges counts in the end interval."""
    inside = np.clip(values, edges[0], edges[-1])
    cells = np.clip(np.searchsorted(edges, inside, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(cells, minlength=len(edges) - 1).astype(float)
    return np.convolve(counts, np.ones(3), mode="same")


def centre_prior(edges: np.ndarray) -> np.ndarray:
    """Log prior of each centre interval: 0 within :data:`TYPICAL_OCTAVES`, minus
    :data:`CENTRE_PRIOR` per octave beyond them (the interval at zero counts as the lowest)."""
    magnitude = np.maximum(np.abs(edges[:-1]), np.abs(edges[1:]))
    octave = np.log2(magnitude)
    low, high = TYPICAL_OCTAVES
    return -CENTRE_PRIOR * (np.maximum(octave - high - 1, 0) + np.maximum(low + 1 - octave, 0))


def bound_candidates(scale: float) -> np.ndarray:
    """Signed candidates of the bounds, sorted: 0 and ``±scale * 2**(j/4)`` around the centre's
    ``scale`` (see the module docstring)."""
    steps = np.arange(-BELOW_CENTRE * STEPS_PER_OCTAVE, ABOVE_CENTRE * STEPS_PER_OCTAVE + 1)
    magnitudes = scale * 2.0 ** (steps / STEPS_PER_OCTAVE)
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes])


def bound_penalty(epsilon: float) -> float:
    """Prior cost of one step of a bound drawn with ``epsilon`` (see the module docstring)."""
    return max(MIN_PENALTY, VALUES_PER_STEP * epsilon)


def upper_scores(
    sorted_values: np.ndarray, candidates: np.ndarray, *, epsilon: float
) -> np.ndarray:
    """Scores of ``candidates`` (increasing, from the centre up) as an upper bound: minus the
    values above each, minus the prior's cost of its steps from the first, in values."""
    above = len(sorted_values) - np.searchsorted(sorted_values, candidates, side="right")
    prior = bound_penalty(epsilon) * np.arange(len(candidates))
    prior = prior + ZERO_CROSSING * (np.sign(candidates) * np.sign(candidates[0]) < 0)
    return -above - prior / epsilon


def private_bounds(
    values: np.ndarray,
    *,
    epsilon: float,
    rng: np.random.Generator,
    low: float | None = None,
) -> BoundsRelease:
    """Bounds of ``values`` (NaN left aside) released with (``epsilon``, 0)-DP.

    Parameters
    ----------
    values : array of float
        The column.
    epsilon : float
        Its budget: a third to the centre and to each bound, or half to the centre and half to
        the upper bound when ``low`` is given.
    rng : numpy.random.Generator
        Source of the draws.
    low : float, optional
        A public lower bound (e.g. 0 for survival times): only the upper bound is drawn.

    Returns
    -------
    BoundsRelease
        The bounds and the epsilon of each draw.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ages = rng.normal(60, 10, 4000)
    >>> release = private_bounds(ages, epsilon=0.5, rng=rng)
    >>> float(np.mean((ages >= release.low) & (ages <= release.high))) > 0.98
    True
    """
    values = np.asarray(values, dtype=float)
    values = np.sort(values[~np.isnan(values)])
    if low is not None:
        values = np.maximum(values, low)
    edges = octave_edges()
    centre_share = 1 / 2 if low is not None else 1 / 3
    epsilon_centre = centre_share * epsilon
    epsilon_bound = (epsilon - epsilon_centre) / (1 if low is not None else 2)
    scores = centre_scores(values, edges) + centre_prior(edges) / epsilon_centre
    if low is not None:  # intervals wholly below a public lower bound hold nothing
        scores = np.where(edges[1:] > low, scores, -np.inf)
    centre = _draw(scores, epsilon_centre, rng)
    start, stop = edges[centre], edges[centre + 1]
    candidates = bound_candidates(max(abs(start), abs(stop)))

    up = candidates[candidates >= (start if low is None else max(start, low))]
    high = float(up[_draw(upper_scores(values, up, epsilon=epsilon_bound), epsilon_bound, rng)])
    if low is not None:
        return BoundsRelease(float(low), max(high, float(low)), epsilon_centre, epsilon_bound, 0.0)
    # The lower bound is the upper bound of the mirrored values, from the centre's upper edge.
    down = -candidates[candidates <= stop][::-1]
    scores = upper_scores(-values[::-1], down, epsilon=epsilon_bound)
    lower = -float(down[_draw(scores, epsilon_bound, rng)])
    return BoundsRelease(
        min(lower, high), max(lower, high), epsilon_centre, epsilon_bound, epsilon_bound
    )


def _draw(scores: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """The exponential mechanism on monotone scores of sensitivity 1 (module docstring)."""
    return exponential_mechanism(scores, sensitivity=1.0, epsilon=epsilon, rng=rng, monotone=True)
