"""Scores for inputs unlike the ones a system was checked on: conformal p-values, Mahalanobis distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from failpath.stats._inputs import StatsInputError, as_scores

__all__ = ["conformal_p_values", "Mahalanobis", "fit_mahalanobis", "mahalanobis_squared"]


def conformal_p_values(calibration_scores: Any, test_scores: Any) -> np.ndarray:
    """Conformal p-values of test nonconformity scores against a calibration set.

    Definition: ``p(x) = (1 + #{calibration scores >= s(x)}) / (n + 1)`` with ``n`` calibration
    scores; higher scores are more unusual, so a small p-value flags an anomaly. If the test point
    is exchangeable with the calibration points, ``P[p <= a] <= a`` for every ``a``.
    """
    calibration = np.sort(as_scores(calibration_scores, "calibration_scores"))
    test = as_scores(test_scores, "test_scores")
    at_least = calibration.size - np.searchsorted(calibration, test, side="left")
    return (1.0 + at_least) / (calibration.size + 1.0)


@dataclass(frozen=True)
class Mahalanobis:
    """A fitted mean and inverse covariance; :meth:`squared` scores new points against them."""

    mean: np.ndarray
    precision: np.ndarray

    def squared(self, points: Any) -> np.ndarray:
        """Squared Mahalanobis distance ``(x - mean)^T precision (x - mean)`` of each row of ``points``."""
        if np.ndim(points) == 1 and self.mean.size > 1:
            points = np.asarray(points)[None, :]  # one point given as a flat vector
        matrix = _as_matrix(points, "points")
        if matrix.shape[1] != self.mean.size:
            raise StatsInputError(
                f"points have {matrix.shape[1]} features but the model was fitted on {self.mean.size}"
            )
        centered = matrix - self.mean
        return np.einsum("ij,jk,ik->i", centered, self.precision, centered)


def fit_mahalanobis(train: Any, *, ridge: float = 0.0) -> Mahalanobis:
    """Fit the mean and sample covariance (``numpy.cov``, ddof=1) of ``train`` rows.

    ``ridge`` is added to the covariance diagonal (0 by default: no regularization). A singular
    covariance (fewer rows than features, or constant or collinear features) is refused with a
    message suggesting a ridge.
    """
    matrix = _as_matrix(train, "train")
    if matrix.shape[0] < 2:
        raise StatsInputError("train needs at least 2 rows to estimate a covariance")
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise StatsInputError(f"ridge must be a number >= 0, got {ridge!r}")
    covariance = np.atleast_2d(np.cov(matrix, rowvar=False)) + ridge * np.eye(matrix.shape[1])
    if np.linalg.matrix_rank(covariance) < covariance.shape[0]:
        raise StatsInputError(
            f"the covariance of train ({matrix.shape[0]} rows, {matrix.shape[1]} features) is singular; "
            "pass ridge > 0 (e.g. ridge=1e-6) or drop constant and duplicated features"
        )
    return Mahalanobis(mean=matrix.mean(axis=0), precision=np.linalg.inv(covariance))


def mahalanobis_squared(train: Any, test: Any, *, ridge: float = 0.0) -> np.ndarray:
    """Squared Mahalanobis distance of each ``test`` row from the ``train`` rows.

    ``(x - mean)^T S^{-1} (x - mean)`` with ``mean`` and ``S`` the sample mean and covariance
    (``numpy.cov``, ddof=1) of ``train``, plus ``ridge`` on the diagonal (0: none). Equivalent to
    ``fit_mahalanobis(train, ridge=ridge).squared(test)``.
    """
    return fit_mahalanobis(train, ridge=ridge).squared(test)


def _as_matrix(values: Any, name: str) -> np.ndarray:
    try:
        matrix = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{name} must be a 2-D array of numbers: {exc}") from None
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise StatsInputError(f"{name} must be a non-empty 2-D array (rows = points), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise StatsInputError(f"{name} holds NaN or infinite values")
    return matrix
