// The answer rules of the released reader-study instructions (METHOD §3), as the page enforces
// them while the reader types. The server validates again; these only make the page helpful.

export const BIRADS = ['0', '1', '2', '3', '4A', '4B', '4C', '5'];

// Probability-of-malignancy range per category, in percent. `lowOpen`/`highOpen` say whether
// the bound itself is excluded.
const POM_RANGES = {
  0: { low: 0, high: 100, lowOpen: false, highOpen: false },
  1: { low: 0, high: 0, lowOpen: false, highOpen: false },
  2: { low: 0, high: 0, lowOpen: false, highOpen: false },
  3: { low: 0, high: 2, lowOpen: true, highOpen: false },
  '4A': { low: 2, high: 10, lowOpen: true, highOpen: false },
  '4B': { low: 10, high: 50, lowOpen: true, highOpen: false },
  '4C': { low: 50, high: 95, lowOpen: true, highOpen: true },
  5: { low: 95, high: 100, lowOpen: false, highOpen: false },
};

/** The malignant answer the category fixes: true (4A-5), false (1-3), or null (0: the reader chooses). */
export function fixedMalignant(birads) {
  if (birads === '0') return null;
  return ['4A', '4B', '4C', '5'].includes(birads);
}

/** The allowed POM range of a category, or null for an unknown category. */
export function pomRange(birads) {
  const range = POM_RANGES[birads];
  return range ? { ...range } : null;
}

/** The range written as a reader reads it, e.g. "2 < POM ≤ 10". */
export function describePomRange(birads) {
  const r = pomRange(birads);
  if (!r) return 'choose a BI-RADS category first';
  if (r.low === r.high) return `POM = ${r.low}`;
  const lowSign = r.lowOpen ? '<' : '≤';
  const highSign = r.highOpen ? '<' : '≤';
  return `${r.low} ${lowSign} POM ${highSign} ${r.high}`;
}

function inRange(pom, r) {
  const aboveLow = r.lowOpen ? pom > r.low : pom >= r.low;
  const belowHigh = r.highOpen ? pom < r.high : pom <= r.high;
  return aboveLow && belowHigh;
}

/**
 * Check one breast's answer. `answer` = {birads: string|'' , malignant: true|false|null, pom: string}
 * (pom as typed). Returns {valid, errors: [string], malignant (the effective value), pom (number|null)}.
 */
export function checkBreast(answer) {
  const errors = [];
  const birads = answer.birads || '';
  if (!BIRADS.includes(birads)) {
    errors.push('choose a BI-RADS category');
    return { valid: false, errors, malignant: null, pom: null };
  }
  const fixed = fixedMalignant(birads);
  const malignant = fixed === null ? answer.malignant : fixed;
  if (malignant !== true && malignant !== false) errors.push('BI-RADS 0: choose malignant yes or no');
  const text = String(answer.pom ?? '').trim();
  let pom = null;
  if (text === '') {
    errors.push(`enter the probability of malignancy (${describePomRange(birads)})`);
  } else {
    pom = Number(text);
    if (!Number.isFinite(pom)) {
      errors.push('the probability of malignancy must be a number from 0 to 100');
      pom = null;
    } else if (!inRange(pom, pomRange(birads))) {
      errors.push(`BI-RADS ${birads} needs ${describePomRange(birads)}`);
    }
  }
  return { valid: errors.length === 0, errors, malignant, pom };
}
