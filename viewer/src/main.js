// The reading page: progress, the four-view viewer, the answer panel with the rules enforced as
// the reader types, pause, preloading, submit with retries that never lose an answer.

import { ApiError, fetchImageBytes, getState, openReading, sendEvent, submitReading } from './api.js';
import { forgetImages } from './images.js';
import { BIRADS, checkBreast, describePomRange, fixedMalignant } from './rules.js';
import { MammoViewer, VIEWS, imageIdOf } from './viewer.js';

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
const BREAST_NAMES = { R: 'right breast', L: 'left breast' };

const page = {
  state: null, // the last GET /api/reader/state
  reading: null, // the current reading id
  viewer: null,
  answers: { R: emptyAnswer(), L: emptyAnswer() },
  rois: [],
  activeBreast: 'R',
  paused: false,
  submitting: false,
  idempotencyKey: null,
  clock: { accumulatedMs: 0, since: null },
  preloaded: null,
};

function emptyAnswer() {
  return { birads: '', malignant: null, pom: '' };
}

function setPhase(phase) {
  document.body.dataset.phase = phase;
}

// --- messages -------------------------------------------------------------------------------

function showMessage(text) {
  const box = $('#message');
  box.textContent = text;
  box.hidden = !text;
}

let noticeTimer = null;
function showNotice(text, ms = 6000) {
  const box = $('#notice');
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && ms) noticeTimer = setTimeout(() => showNotice(''), ms);
}

function showOverlay(text, { resume = false } = {}) {
  $('#overlay-text').textContent = text;
  $('#resume').hidden = !resume;
  $('#overlay').hidden = false;
}

function hideOverlay() {
  $('#overlay').hidden = true;
}

// --- the active clock: runs while an exam is shown, the page visible and not paused ------------

function clockRunning() {
  return page.clock.since !== null;
}

function startClock() {
  if (!clockRunning() && page.reading && !page.paused && document.visibilityState === 'visible') {
    page.clock.since = performance.now();
  }
}

function stopClock() {
  if (clockRunning()) {
    page.clock.accumulatedMs += performance.now() - page.clock.since;
    page.clock.since = null;
  }
  saveDraft();
}

function activeSeconds() {
  const running = clockRunning() ? performance.now() - page.clock.since : 0;
  return (page.clock.accumulatedMs + running) / 1000;
}

// --- drafts: the answers survive a reload or a closed tab until the server has them -----------

function draftKey(reading) {
  return `perceptiongap-draft-${reading}`;
}

function saveDraft() {
  if (!page.reading) return;
  const draft = {
    answers: page.answers,
    idempotencyKey: page.idempotencyKey,
    activeSeconds: activeSeconds(),
  };
  try {
    localStorage.setItem(draftKey(page.reading), JSON.stringify(draft));
  } catch {
    // storage full or disabled: the answers are still on the page
  }
}

function loadDraft(reading) {
  try {
    return JSON.parse(localStorage.getItem(draftKey(reading)) || 'null');
  } catch {
    return null;
  }
}

function dropDraft(reading) {
  try {
    localStorage.removeItem(draftKey(reading));
  } catch {
    // nothing to drop
  }
}

// --- answer panel ---------------------------------------------------------------------------

function buildPanel() {
  for (const breast of ['R', 'L']) {
    const box = $(`#breast-${breast} .birads`);
    for (const category of BIRADS) {
      const label = document.createElement('label');
      label.className = 'birads-choice';
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = `birads-${breast}`;
      input.value = category;
      label.append(input, document.createTextNode(category));
      box.append(label);
    }
    box.prepend(Object.assign(document.createElement('span'), { className: 'field-label', textContent: 'BI-RADS' }));
    $(`#breast-${breast}`).addEventListener('focusin', () => setActiveBreast(breast));
    $(`#breast-${breast}`).addEventListener('pointerdown', () => setActiveBreast(breast));
  }
  $('#answers').addEventListener('input', readPanel);
  $('#answers').addEventListener('change', readPanel);
  $('#answers').addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
}

function setActiveBreast(breast) {
  page.activeBreast = breast;
  for (const b of ['R', 'L']) $(`#breast-${b}`).classList.toggle('active', b === breast);
}

/** Read the form into page.answers, derive what the rules fix, then redraw. */
function readPanel(event) {
  for (const breast of ['R', 'L']) {
    const form = $('#answers');
    const answer = page.answers[breast];
    const before = answer.birads;
    answer.birads = form.elements[`birads-${breast}`].value || '';
    const malignantValue = form.elements[`malignant-${breast}`].value;
    answer.malignant = malignantValue === 'yes' ? true : malignantValue === 'no' ? false : null;
    answer.pom = form.elements[`pom-${breast}`].value;
    if (answer.birads !== before) applyCategory(breast, before);
  }
  renderPanel();
  saveDraft();
  if (event && event.type === 'change') showMessage('');
}

/** What a new category fixes: malignant (1-5), and POM = 0 for 1 and 2. */
function applyCategory(breast, previous) {
  const answer = page.answers[breast];
  const fixed = fixedMalignant(answer.birads);
  if (fixed !== null) answer.malignant = fixed;
  else if (fixedMalignant(previous) !== null) answer.malignant = null; // 0 after 1-5: the reader chooses
  if (answer.birads === '1' || answer.birads === '2') answer.pom = '0';
  else if (previous === '1' || previous === '2') answer.pom = '';
}

function setBirads(breast, category) {
  const answer = page.answers[breast];
  const previous = answer.birads;
  answer.birads = category;
  applyCategory(breast, previous);
  renderPanel();
  saveDraft();
}

/** Write page.answers back into the form and show ranges, derived values, errors, Submit. */
function renderPanel() {
  const form = $('#answers');
  for (const breast of ['R', 'L']) {
    const answer = page.answers[breast];
    const box = $(`#breast-${breast}`);
    for (const input of form.elements[`birads-${breast}`]) input.checked = input.value === answer.birads;
    const fixed = answer.birads ? fixedMalignant(answer.birads) : undefined;
    for (const input of form.elements[`malignant-${breast}`]) {
      input.checked = answer.malignant === (input.value === 'yes');
      input.disabled = fixed !== null && fixed !== undefined;
    }
    $('.derived', box).textContent =
      fixed === null ? '(BI-RADS 0: your choice)' : fixed === undefined ? '' : `(set by BI-RADS ${answer.birads})`;
    const pom = form.elements[`pom-${breast}`];
    if (pom.value !== String(answer.pom)) pom.value = answer.pom;
    pom.readOnly = answer.birads === '1' || answer.birads === '2';
    $('.range', box).textContent = answer.birads
      ? `Allowed: ${describePomRange(answer.birads)}`
      : 'Allowed range: choose a BI-RADS category first';
    const check = checkBreast(answer);
    const started = answer.birads || String(answer.pom).trim();
    const errors = [...check.errors, ...roiErrors(breast, check)];
    $('.errors', box).textContent = started ? errors.join('; ') : '';
    box.classList.toggle('invalid', Boolean(started) && errors.length > 0);
    box.classList.toggle('valid', errors.length === 0);
  }
  $('#submit').disabled = !answersValid() || page.submitting || page.paused || !page.reading;
}

function roiErrors(breast, check) {
  if (!annotating()) return [];
  const onBreast = page.rois.filter((r) => r.view.startsWith(breast));
  if (onBreast.length && check.malignant !== true) {
    return [`rectangles are only for a breast you call malignant: delete the ${onBreast.length} on the ${BREAST_NAMES[breast]} or call it malignant`];
  }
  return [];
}

function answersValid() {
  return ['R', 'L'].every((breast) => {
    const check = checkBreast(page.answers[breast]);
    return check.valid && roiErrors(breast, check).length === 0;
  });
}

function annotating() {
  return Boolean(page.state?.current?.annotate);
}

function renderRois(rois) {
  page.rois = rois;
  const list = $('#roi-list');
  list.replaceChildren();
  for (const view of VIEWS) {
    const mine = rois.filter((r) => r.view === view);
    mine.forEach((roi, index) => {
      const item = document.createElement('li');
      const w = Math.round(roi.x1 - roi.x0);
      const h = Math.round(roi.y1 - roi.y0);
      item.textContent = `${view} #${index + 1}: ${w} × ${h} px at (${Math.round(roi.x0)}, ${Math.round(roi.y0)}) `;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Delete';
      remove.setAttribute('aria-label', `Delete rectangle ${index + 1} on ${view}`);
      remove.addEventListener('click', () => page.viewer.deleteRoi(roi.uid));
      item.append(remove);
      list.append(item);
    });
  }
  if (!rois.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No rectangles yet.' }));
  renderPanel();
}

// --- progress, presets ----------------------------------------------------------------------

function renderProgress() {
  const { progress, current } = page.state;
  const practice = current?.practice ? ' (practice)' : '';
  const mode = annotating() ? ' · annotation study' : '';
  $('#progress').textContent = `Exam ${progress.position} of ${progress.total}${practice} · ${progress.done} done${mode}`;
}

function renderPresets() {
  const select = $('#window-preset');
  select.replaceChildren();
  page.viewer.windows().forEach((name, index) => {
    const option = document.createElement('option');
    option.value = String(index);
    option.textContent = index === 0 ? `${name} (image)` : name;
    select.append(option);
  });
  select.value = '0';
}

// --- the exam cycle ---------------------------------------------------------------------------

async function loadState() {
  try {
    return await getState();
  } catch (error) {
    if (error.status === 401) {
      setPhase('nolink');
      showOverlay('This page needs your personal study link. Open the link you were sent (again).');
      return null;
    }
    throw error;
  }
}

async function start() {
  buildPanel();
  bindControls();
  setPhase('loading');
  showOverlay('Loading…');
  const cpu = new URLSearchParams(location.search).get('render') === 'cpu';
  page.viewer = new MammoViewer(
    Object.fromEntries(VIEWS.map((v) => [v, $(`#vp-${v}`)])),
    { onRoisChanged: renderRois, onMessage: (text) => showNotice(text), cpu },
  );
  await page.viewer.start();
  let state = null;
  while (state === null) {
    try {
      state = await loadState();
      if (state === null) return;
    } catch (error) {
      showOverlay(`${describeError(error)} Retrying in a few seconds…`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  await showState(state);
}

async function showState(state) {
  page.state = state;
  if (state.study?.max_rois_per_view) page.viewer.maxRois = state.study.max_rois_per_view;
  if (state.finished || !state.current) {
    page.reading = null;
    setPhase('finished');
    renderProgressFinished(state);
    showOverlay('You have finished this study: every exam is submitted. Thank you! You can close this page.');
    renderPanel();
    return;
  }
  const current = state.current;
  setPhase('loading');
  showOverlay('Loading the images…');
  const fresh = page.reading !== current.reading;
  if (fresh) {
    const draft = loadDraft(current.reading);
    page.answers = draft?.answers ?? { R: emptyAnswer(), L: emptyAnswer() };
    page.idempotencyKey = draft?.idempotencyKey ?? makeKey();
    page.clock = { accumulatedMs: (draft?.activeSeconds ?? 0) * 1000, since: null };
  }
  renderProgress();
  $('[data-tool="rect"]').hidden = !current.annotate;
  $('#rois').hidden = !current.annotate;
  page.viewer.setAnnotating(Boolean(current.annotate));
  let opened = false;
  while (!opened) {
    try {
      await openReading(current.reading);
      opened = true;
    } catch (error) {
      if (error.kind === 'http' && error.status === 409) {
        // Submitted meanwhile (another tab): start again from the server's state.
        return showState(await getState());
      }
      showOverlay(`${describeError(error)} Retrying…`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  page.reading = current.reading;
  try {
    await page.viewer.show(current.images, (image) => fetchImageBytes(image));
  } catch (error) {
    setPhase('error');
    showOverlay(`The images could not be loaded: ${describeError(error)} Reload the page to try again.`);
    return;
  }
  renderPresets();
  renderRois(page.viewer.rois());
  renderPanel();
  hideOverlay();
  page.paused = false;
  $('#answers').inert = false;
  setPhase('reading');
  startClock();
  preloadNext(state.next);
}

function renderProgressFinished(state) {
  const { progress } = state;
  $('#progress').textContent = `Finished: ${progress.done} of ${progress.total} exams submitted`;
}

function preloadNext(next) {
  if (!next || !next.images) return;
  const ids = next.images.map(imageIdOf);
  page.preloaded = ids;
  // Errors here are harmless: the images are fetched again when the exam is shown.
  page.viewer.preload(next.images, (image) => fetchImageBytes(image)).catch(() => {});
}

function makeKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function submissionBody() {
  const answers = {};
  for (const breast of ['R', 'L']) {
    const check = checkBreast(page.answers[breast]);
    answers[breast] = { birads: page.answers[breast].birads, malignant: check.malignant, pom: check.pom };
  }
  const body = {
    idempotency_key: page.idempotencyKey,
    active_seconds: Math.round(activeSeconds() * 1000) / 1000,
    answers,
  };
  if (annotating()) {
    body.rois = page.rois.map((r) => ({
      view: r.view,
      x0: round2(r.x0),
      y0: round2(r.y0),
      x1: round2(r.x1),
      y1: round2(r.y1),
    }));
  }
  return body;
}

function round2(value) {
  return Math.round(value * 100) / 100;
}

async function submit() {
  if (page.submitting || !answersValid() || page.paused || !page.reading) return;
  page.submitting = true;
  setPhase('submitting');
  $('#submit-status').textContent = 'Submitting…';
  renderPanel();
  const reading = page.reading;
  const shownImages = VIEWS.map((v) => imageIdOf(page.viewer.images[v]));
  let result = null;
  try {
    result = await submitReading(reading, submissionBody());
  } catch (error) {
    page.submitting = false;
    $('#submit-status').textContent = '';
    if (error.kind === 'http' && error.status === 409) {
      // The server already has an answer for this exam (e.g. from another tab): move on.
      dropDraft(reading);
      showMessage(`${error.message} This exam already has an answer on the server; showing your next exam.`);
      page.reading = null;
      return showState(await getState());
    }
    setPhase('reading');
    showMessage(`Your answers were NOT stored: ${describeError(error)} They are kept on this page; press Submit to try again.`);
    renderPanel();
    return;
  }
  page.submitting = false;
  stopClock();
  dropDraft(reading);
  $('#submit-status').textContent = result.replayed ? 'Stored (your earlier submit had reached the server).' : 'Stored.';
  showMessage('');
  forgetImages(shownImages.filter((id) => !(page.preloaded || []).includes(id)));
  page.reading = null;
  page.viewer.clearRois();
  await showState(result.state ?? (await getState()));
  setTimeout(() => {
    $('#submit-status').textContent = '';
  }, 3000);
}

function describeError(error) {
  if (error instanceof ApiError) {
    if (error.kind === 'network') return 'The study server cannot be reached (is it running, are you online?).';
    if (error.status === 401) return 'Your session has ended: open your study link again.';
    if (error.status === 422) {
      const where = error.breast ? `${BREAST_NAMES[error.breast]}: ` : '';
      return `The server refused the answer: ${error.message.startsWith(where) ? '' : where}${error.message}`;
    }
    return error.message;
  }
  return String(error?.message ?? error);
}

// --- pause --------------------------------------------------------------------------------

function pause() {
  if (!page.reading || page.paused || page.submitting) return;
  page.paused = true;
  stopClock();
  setPhase('paused');
  $('#pause').textContent = 'Resume';
  showOverlay('Paused: the clock is stopped and the images are hidden.', { resume: true });
  $('#answers').inert = true; // no answering while the clock is stopped
  renderPanel();
  sendEvent(page.reading, 'paused').catch(() => {});
}

function resume() {
  if (!page.paused) return;
  page.paused = false;
  hideOverlay();
  $('#answers').inert = false;
  setPhase('reading');
  $('#pause').textContent = 'Pause';
  startClock();
  renderPanel();
  sendEvent(page.reading, 'unpaused').catch(() => {});
}

// --- controls and keys ------------------------------------------------------------------------

function selectTool(tool) {
  page.viewer.setTool(tool);
  for (const button of $$('[data-tool]')) button.setAttribute('aria-pressed', String(button.dataset.tool === page.viewer.tool));
}

function bindControls() {
  for (const button of $$('[data-tool]')) button.addEventListener('click', () => selectTool(button.dataset.tool));
  $('#window-preset').addEventListener('change', (event) => page.viewer.setWindow(Number(event.target.value)));
  $('#fit').addEventListener('click', () => page.viewer.fit());
  $('#one-to-one').addEventListener('click', () => page.viewer.oneToOne());
  $('#reset').addEventListener('click', () => {
    page.viewer.reset();
    $('#window-preset').value = '0';
  });
  $('#link-zoom').addEventListener('change', (event) => page.viewer.setLinkedZoom(event.target.checked));
  $('#pause').addEventListener('click', () => (page.paused ? resume() : pause()));
  $('#resume').addEventListener('click', resume);
  $('#help-button').addEventListener('click', () => {
    const help = $('#help');
    help.hidden = !help.hidden;
    $('#help-button').setAttribute('aria-expanded', String(!help.hidden));
  });
  document.addEventListener('keydown', onKey);
  document.addEventListener('visibilitychange', () => (document.visibilityState === 'visible' ? startClock() : stopClock()));
  window.addEventListener('pagehide', stopClock);
}

function onKey(event) {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    submit();
    return;
  }
  if (event.key === 'Escape') {
    event.preventDefault();
    if (page.paused) resume();
    else pause();
    return;
  }
  const typing = event.target instanceof HTMLInputElement && ['number', 'text'].includes(event.target.type);
  if (typing || event.ctrlKey || event.metaKey || event.altKey || page.paused || !page.reading) return;
  const key = event.key.toLowerCase();
  const breast = page.activeBreast;
  const categories = { 0: '0', 1: '1', 2: '2', 3: '3', 5: '5', a: '4A', b: '4B', c: '4C' };
  let handled = true;
  if (key === 'r' || key === 'l') setActiveBreast(key.toUpperCase());
  else if (key in categories) setBirads(breast, categories[key]);
  else if ((key === 'y' || key === 'n') && page.answers[breast].birads === '0') {
    page.answers[breast].malignant = key === 'y';
    renderPanel();
    saveDraft();
  } else if (key === 'p') {
    const input = $('#answers').elements[`pom-${breast}`];
    input.focus();
    input.select();
  } else if (key === 'w') selectTool('wl');
  else if (key === 'h') selectTool('pan');
  else if (key === 'z') selectTool('zoom');
  else if (key === 'e' && annotating()) selectTool('rect');
  else if (key === 'v') {
    const select = $('#window-preset');
    const next = (Number(select.value) + 1) % Math.max(select.options.length, 1);
    select.value = String(next);
    page.viewer.setWindow(next);
  } else if (key === 'f') page.viewer.fit();
  else if (key === 'x') page.viewer.oneToOne();
  else if (event.key === 'Home') {
    page.viewer.reset();
    $('#window-preset').value = '0';
  } else if (event.key === 'Delete' || event.key === 'Backspace') page.viewer.deleteSelected();
  else if (key === '?') $('#help-button').click();
  else handled = false;
  if (handled) event.preventDefault();
}

setActiveBreast('R');
start().catch((error) => {
  setPhase('error');
  showOverlay(`The page could not start: ${describeError(error)}`);
  console.error(error);
});
