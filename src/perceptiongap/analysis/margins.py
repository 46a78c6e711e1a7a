"""How small an effect has to be to count as none: the margins of the "no effect" verdicts.

The paper says filtering has "almost no effect" on radiologists' soft tissue lesions and that
networks trained on filtered images "largely recover" separability. A p-value above 0.05 is no
evidence of that (a noisier fit passes more easily), so these verdicts ask for evidence that any
effect stays within a margin, in the units of METHOD §6:

- predictive confidence: the severity effect gamma[s, g] is a shift of the logit; filtering
  counts as not lowering confidence when P(gamma[s, g] > -:data:`CONFIDENCE_MARGIN` | D) is at
  least :data:`EVIDENCE_LEVEL`. A logit shift of 0.5 is an odds ratio of 1.65 (a probability of
  0.5 falls to 0.38); the paper's affected groups show shifts of 2 to 3.5 at 4 mm.
- class separability: the KS statistic (0 to 1); filtering counts as not lowering separability
  when the one-sided :data:`EVIDENCE_LEVEL` upper bound of the mean per-observer drop from
  severity 0 (a t bound over observers, the sample of the release's KS test) is below
  :data:`SEPARABILITY_MARGIN`. The paper's GMIC soft-tissue drop is 0.36 (0.77 -> 0.41).
"""

from __future__ import annotations

__all__ = ["CONFIDENCE_MARGIN", "EVIDENCE_LEVEL", "SEPARABILITY_MARGIN"]

#: Largest lowering of the logit (gamma) that counts as no effect on confidence.
CONFIDENCE_MARGIN = 0.5
#: Largest drop of class separability (KS statistic) that counts as no effect.
SEPARABILITY_MARGIN = 0.1
#: Posterior probability, or one-sided confidence level, that the evidence of no effect must reach.
EVIDENCE_LEVEL = 0.95
