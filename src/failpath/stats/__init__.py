"""Statistics for confidence, risk and thresholds (numpy and the standard library).

Definitions are part of the interface; every function's docstring states its own. Shared
conventions: an item is *answered* at threshold ``t`` when ``confidence >= t``; ``correct`` holds
booleans or 0/1 and an *error* is ``correct == 0``; coverage = answered / n, selective risk =
errors among answered / answered, joint risk = errors among answered / n. Grouped data
``(confidence, count, errors)`` becomes per-item arrays with :func:`expand_groups`.

Requests of one case share its difficulty, so wherever a case makes several requests the
independent unit is the case: :func:`case_rate_upper_bound`, :func:`select_threshold_by_case` and
:func:`pass_k_lower_bound` give each case one loss in [0, 1] and bound the mean over cases.

The exact binomial tails and their inverse in ``p`` (for Clopper–Pearson) are computed in numpy
(:mod:`failpath.stats._special`, tested against scipy), so neither importing this package nor
computing a check's figures loads scipy.
"""

from failpath.stats._inputs import StatsInputError, expand_groups
from failpath.stats.bounds import (
    BET_CAP,
    CaseCounts,
    MeanBound,
    case_counts,
    case_rate_upper_bound,
    cases_needed,
    mean_upper_bound,
    p_value_bounded_mean,
)
from failpath.stats.anomaly import Mahalanobis, conformal_p_values, fit_mahalanobis, mahalanobis_squared
from failpath.stats.confidence import (
    ReliabilityBins,
    RiskCoverage,
    adaptive_ece,
    augrc,
    aurc,
    auroc,
    brier,
    e_aurc,
    ece,
    oracle_aurc,
    reliability_bins,
    risk_coverage,
    selective_risk_at_coverage,
)
from failpath.stats.intervals import (
    FEW_FLIPS,
    Gap,
    Interval,
    binomial_upper_bound,
    bootstrap_ci,
    clopper_pearson,
    paired_gap,
)
from failpath.stats.passk import PassK, ShareGap, paired_share_gap, pass_hat_k, pass_k_curve, pass_k_lower_bound, upper_bounds_of_means
from failpath.stats.policy import (
    ActionCost,
    BayesCutoffs,
    CostPolicy,
    bayes_cutoffs,
    cost_optimal_policy,
    evaluate_policy,
)
from failpath.stats.thresholds import (
    ThresholdResult,
    p_value_binomial,
    p_value_hoeffding_bentkus,
    select_threshold,
    select_threshold_by_case,
    threshold_grid,
)

__all__ = [
    # inputs
    "StatsInputError",
    "expand_groups",
    # confidence quality
    "RiskCoverage",
    "risk_coverage",
    "aurc",
    "oracle_aurc",
    "e_aurc",
    "augrc",
    "auroc",
    "ReliabilityBins",
    "reliability_bins",
    "ece",
    "adaptive_ece",
    "brier",
    "selective_risk_at_coverage",
    # intervals
    "Interval",
    "Gap",
    "clopper_pearson",
    "binomial_upper_bound",
    "bootstrap_ci",
    "paired_gap",
    "FEW_FLIPS",
    # bounds with the case as the independent unit
    "MeanBound",
    "CaseCounts",
    "BET_CAP",
    "mean_upper_bound",
    "p_value_bounded_mean",
    "case_counts",
    "case_rate_upper_bound",
    "cases_needed",
    # thresholds with a guarantee
    "ThresholdResult",
    "threshold_grid",
    "p_value_binomial",
    "p_value_hoeffding_bentkus",
    "select_threshold",
    "select_threshold_by_case",
    # repeated trials
    "PassK",
    "pass_hat_k",
    "pass_k_lower_bound",
    "pass_k_curve",
    "ShareGap",
    "paired_share_gap",
    "upper_bounds_of_means",
    # cost-optimal policy
    "ActionCost",
    "BayesCutoffs",
    "CostPolicy",
    "bayes_cutoffs",
    "evaluate_policy",
    "cost_optimal_policy",
    # anomaly scores
    "conformal_p_values",
    "Mahalanobis",
    "fit_mahalanobis",
    "mahalanobis_squared",
]
