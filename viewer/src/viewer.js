// The four-view mammography viewer: Cornerstone3D stack viewports hung as METHOD §3 says
// (CC above MLO; right breast on the left facing left, left breast on the right facing right),
// window/level, zoom, pan, fit, 1:1, linked zoom, and up to N rectangles per view.

import {
  RenderingEngine,
  Enums,
  eventTarget,
  init as coreInit,
  setUseCPURendering,
  utilities,
} from '@cornerstonejs/core';
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  WindowLevelTool,
  PanTool,
  ZoomTool,
  RectangleROITool,
  annotation,
  Enums as ToolEnums,
} from '@cornerstonejs/tools';

import { loadImage } from './images.js';

export const VIEWS = ['R-CC', 'L-CC', 'R-MLO', 'L-MLO'];

/** The way a breast must face on screen: the nipple points away from the other breast. */
export function wantedFacing(view) {
  return view.startsWith('R') ? 'left' : 'right';
}

/** Whether the stored image must be mirrored (by the camera) to face the wanted way. */
export function needsMirror(view, storedFacing) {
  return storedFacing !== wantedFacing(view);
}

const { MouseBindings } = ToolEnums;
const TOOL_GROUP = 'pg-reading';
const ENGINE = 'pg-engine';
const TOOLS = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  rect: RectangleROITool.toolName,
};

let initialised = false;

async function initCornerstone({ cpu }) {
  if (initialised) return;
  coreInit();
  if (cpu) setUseCPURendering(true);
  toolsInit();
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, RectangleROITool]) addTool(tool);
  initialised = true;
}

export class MammoViewer {
  /**
   * elements: {view: HTMLElement} for the four views; options.onRoisChanged(rois) after every
   * change of a rectangle; options.onMessage(text) for refusals; options.maxRois (default 3).
   */
  constructor(elements, options = {}) {
    this.elements = elements;
    this.onRoisChanged = options.onRoisChanged || (() => {});
    this.onMessage = options.onMessage || (() => {});
    this.maxRois = options.maxRois ?? 3;
    this.cpu = Boolean(options.cpu);
    this.images = {}; // view -> image description from the state
    this.imageIds = {}; // view -> cornerstone image id
    this.linkedZoom = false;
    this.tool = 'wl';
    this.annotating = false;
    this._syncing = false;
  }

  async start() {
    await initCornerstone({ cpu: this.cpu });
    this.engine = new RenderingEngine(ENGINE);
    this.engine.setViewports(
      VIEWS.map((view) => ({
        viewportId: view,
        type: Enums.ViewportType.STACK,
        element: this.elements[view],
        defaultOptions: { background: [0, 0, 0] },
      })),
    );
    const group = ToolGroupManager.createToolGroup(TOOL_GROUP);
    group.addTool(WindowLevelTool.toolName);
    group.addTool(PanTool.toolName);
    group.addTool(ZoomTool.toolName);
    group.addTool(RectangleROITool.toolName, {
      calculateStats: false,
      getTextLines: () => [],
      preventHandleOutsideImage: true,
    });
    for (const view of VIEWS) group.addViewport(view, ENGINE);
    this.group = group;
    this.setTool('wl');
    for (const view of VIEWS) {
      this.elements[view].addEventListener(Enums.Events.CAMERA_MODIFIED, () => this._cameraChanged(view));
      this.elements[view].addEventListener(Enums.Events.VOI_MODIFIED, () => this._showWindow(view));
      this.elements[view].addEventListener('contextmenu', (event) => event.preventDefault());
      this.elements[view].addEventListener('wheel', (event) => this._wheel(view, event), { passive: false });
      this.elements[view].addEventListener(
        'mousedown',
        (event) => {
          if (this.tool === 'rect' && event.button === 0 && this.countRois(view) >= this.maxRois) {
            this.onMessage(`At most ${this.maxRois} rectangles per view: delete one on ${view} first.`);
          }
        },
        true,
      );
    }
    const { Events } = ToolEnums;
    eventTarget.addEventListener(Events.ANNOTATION_COMPLETED, (event) => this._annotationCompleted(event));
    eventTarget.addEventListener(Events.ANNOTATION_MODIFIED, () => this.onRoisChanged(this.rois()));
    eventTarget.addEventListener(Events.ANNOTATION_REMOVED, () => this.onRoisChanged(this.rois()));
    // The grid changes size with the window and when a message bar opens or closes above it.
    let pending = null;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => this.resize());
    });
    for (const view of VIEWS) observer.observe(this.elements[view]);
  }

  /** Bind the left button to one tool ('wl', 'pan', 'zoom', 'rect'); middle pans, right zooms (the wheel: see _wheel). */
  setTool(tool) {
    if (tool === 'rect' && !this.annotating) return;
    this.tool = tool;
    const group = this.group;
    for (const name of Object.values(TOOLS)) group.setToolPassive(name);
    const primary = TOOLS[tool];
    const bindings = {
      [TOOLS.wl]: [],
      [TOOLS.pan]: [{ mouseButton: MouseBindings.Auxiliary }],
      [TOOLS.zoom]: [{ mouseButton: MouseBindings.Secondary }],
      [TOOLS.rect]: [],
    };
    bindings[primary].push({ mouseButton: MouseBindings.Primary });
    for (const [name, list] of Object.entries(bindings)) {
      if (list.length) group.setToolActive(name, { bindings: list });
    }
    if (!this.annotating) group.setToolDisabled(TOOLS.rect);
  }

  /** Annotation studies: show and allow rectangles. */
  setAnnotating(on) {
    this.annotating = on;
    if (on) this.group.setToolPassive(TOOLS.rect);
    else this.group.setToolDisabled(TOOLS.rect);
    if (!on && this.tool === 'rect') this.setTool('wl');
  }

  /**
   * Show one exam: `images` are the state's image descriptions (R-CC, L-CC, R-MLO, L-MLO);
   * `fetchBytes(image)` returns the PNG's bytes. Resolves when all four are rendered.
   */
  async show(images, fetchBytes) {
    this.clearRois();
    const byView = {};
    for (const image of images) byView[image.view] = image;
    await Promise.all(VIEWS.map((view) => loadImage(imageIdOf(byView[view]), () => fetchBytes(byView[view]), byView[view].window)));
    this.images = byView;
    for (const view of VIEWS) {
      const image = byView[view];
      const imageId = imageIdOf(image);
      this.imageIds[view] = imageId;
      const viewport = this.engine.getViewport(view);
      await viewport.setStack([imageId], 0);
      this.elements[view].dataset.imageId = image.id;
    }
    this.windowIndex = 0;
    this.reset();
  }

  /** Fetch, decode and register an exam's images ahead of time (no rendering). */
  preload(images, fetchBytes) {
    return Promise.all(images.map((image) => loadImage(imageIdOf(image), () => fetchBytes(image), image.window)));
  }

  windows() {
    const first = this.images[VIEWS[0]];
    return first ? first.windows.map((w) => w.name) : [];
  }

  /** Apply the i-th window of every image (0 = the image's default). */
  setWindow(index) {
    this.windowIndex = index;
    for (const view of VIEWS) {
      const image = this.images[view];
      if (!image) continue;
      const window = image.windows[index] || image.window;
      const viewport = this.engine.getViewport(view);
      viewport.setProperties({ voiRange: voiRangeOf(window) });
      viewport.render();
      this._showWindow(view);
    }
  }

  /** Current window of a view as {center, width} (stored pixel values). */
  currentWindow(view) {
    const { voiRange } = this.engine.getViewport(view).getProperties();
    return { center: (voiRange.lower + voiRange.upper) / 2, width: voiRange.upper - voiRange.lower };
  }

  _showWindow(view) {
    const label = this.elements[view].querySelector('.wl');
    if (!label || !this.images[view]) return;
    const { center, width } = this.currentWindow(view);
    label.textContent = `L ${Math.round(center)}  W ${Math.round(width)}`;
    label.dataset.center = String(center);
    label.dataset.width = String(width);
  }

  /** Whole image in view, mirrored as the hanging protocol wants, chest wall at the inner edge. */
  fit() {
    this._withoutSync(() => {
      for (const view of VIEWS) {
        if (!this.images[view]) continue;
        const viewport = this.engine.getViewport(view);
        viewport.resetCamera();
        const mirror = needsMirror(view, this.images[view].facing);
        if (Boolean(viewport.getCamera().flipHorizontal) !== mirror) viewport.setCamera({ flipHorizontal: mirror });
        this._anchorChestWall(view);
        viewport.render();
      }
    });
  }

  /** One stored-image pixel per device pixel, about the current centre of each view. */
  oneToOne() {
    this._withoutSync(() => {
      for (const view of VIEWS) {
        if (!this.images[view]) continue;
        const viewport = this.engine.getViewport(view);
        const canvas = viewport.getCanvas();
        viewport.setCamera({ parallelScale: canvas.height / 2 });
        viewport.render();
      }
    });
  }

  /** Fit, default window. */
  reset() {
    this.fit();
    this.setWindow(0);
  }

  setLinkedZoom(on) {
    this.linkedZoom = on;
  }

  /** Follow a change of the viewports' size, keeping each view's zoom and pan. */
  resize() {
    if (!this.engine) return;
    this.engine.resize(true, true);
  }

  // --- rectangles ---------------------------------------------------------------------------

  _rectangleAnnotations(view) {
    const imageId = this.imageIds[view];
    const all = annotation.state.getAllAnnotations();
    return all.filter(
      (a) => a.metadata?.toolName === TOOLS.rect && imageId && a.metadata?.referencedImageId === imageId,
    );
  }

  countRois(view) {
    return this._rectangleAnnotations(view).length;
  }

  /** Every rectangle in stored-image pixels: [{view, x0, y0, x1, y1, uid}], x = column, y = row. */
  rois() {
    const out = [];
    for (const view of VIEWS) {
      const imageId = this.imageIds[view];
      for (const a of this._rectangleAnnotations(view)) {
        const corners = a.data.handles.points.map((p) => utilities.worldToImageCoords(imageId, p));
        const xs = corners.map((c) => c[0]);
        const ys = corners.map((c) => c[1]);
        out.push({
          view,
          uid: a.annotationUID,
          x0: Math.min(...xs),
          y0: Math.min(...ys),
          x1: Math.max(...xs),
          y1: Math.max(...ys),
        });
      }
    }
    return out;
  }

  deleteRoi(uid) {
    annotation.state.removeAnnotation(uid);
    this.engine.render();
    this.onRoisChanged(this.rois());
  }

  deleteSelected() {
    const selected = annotation.selection.getAnnotationsSelected() || [];
    for (const uid of selected) annotation.state.removeAnnotation(uid);
    if (selected.length) {
      this.engine.render();
      this.onRoisChanged(this.rois());
    }
    return selected.length;
  }

  clearRois() {
    for (const view of VIEWS) {
      for (const a of this._rectangleAnnotations(view)) annotation.state.removeAnnotation(a.annotationUID);
    }
    if (this.engine) this.engine.render();
  }

  _annotationCompleted(event) {
    const done = event.detail.annotation;
    if (done?.metadata?.toolName !== TOOLS.rect) return;
    const view = VIEWS.find((v) => this.imageIds[v] === done.metadata.referencedImageId);
    const roi = this.rois().find((r) => r.uid === done.annotationUID);
    // A click without a drag makes an empty rectangle: drop it silently.
    if (roi && (roi.x1 - roi.x0 < 1 || roi.y1 - roi.y0 < 1)) {
      annotation.state.removeAnnotation(done.annotationUID);
      this.engine.render();
    } else if (view && this.countRois(view) > this.maxRois) {
      annotation.state.removeAnnotation(done.annotationUID);
      this.engine.render();
      this.onMessage(`At most ${this.maxRois} rectangles per view: the new one on ${view} was not kept.`);
    }
    this.onRoisChanged(this.rois());
  }

  // --- camera helpers -----------------------------------------------------------------------

  _withoutSync(fn) {
    const was = this._syncing;
    this._syncing = true;
    try {
      fn();
    } finally {
      this._syncing = was;
    }
  }

  _cameraChanged(source) {
    if (!this.linkedZoom || this._syncing) return;
    const { parallelScale } = this.engine.getViewport(source).getCamera();
    this._withoutSync(() => {
      for (const view of VIEWS) {
        if (view === source || !this.images[view]) continue;
        const viewport = this.engine.getViewport(view);
        const current = viewport.getCamera().parallelScale;
        if (Math.abs(current - parallelScale) > 1e-6) {
          // Zoom about the middle of the inner edge, so the chest walls stay on the centre line.
          const canvas = viewport.getCanvas();
          const inner = view.startsWith('R') ? canvas.clientWidth : 0;
          zoomAbout(viewport, [inner, canvas.clientHeight / 2], current / parallelScale);
          viewport.render();
        }
      }
    });
  }

  /**
   * The wheel zooms by 15 % a notch about the point under the mouse (Cornerstone's own wheel zoom
   * moves about 2 % a notch, too slow to go from a whole mammogram to its pixels).
   */
  _wheel(view, event) {
    if (!this.images[view] || Math.abs(event.deltaY) < 1) return;
    event.preventDefault();
    const viewport = this.engine.getViewport(view);
    const rect = viewport.getCanvas().getBoundingClientRect();
    zoomAbout(viewport, [event.clientX - rect.left, event.clientY - rect.top], 1.15 ** -Math.sign(event.deltaY));
    viewport.render();
  }

  /** Pan horizontally so that the chest-wall edge of the image touches the viewport's inner edge. */
  _anchorChestWall(view) {
    const viewport = this.engine.getViewport(view);
    const image = this.images[view];
    const imageId = this.imageIds[view];
    const canvas = viewport.getCanvas();
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    const xs = [
      [0, 0],
      [image.columns, image.rows],
    ].map((p) => viewport.worldToCanvas(utilities.imageToWorldCoords(imageId, p))[0]);
    const left = Math.min(...xs);
    const right = Math.max(...xs);
    if (right - left >= width) return;
    // Right breast (left column) faces left: chest wall on the right, against the centre line.
    const shift = view.startsWith('R') ? width - right : -left;
    const camera = viewport.getCamera();
    const centre = viewport.canvasToWorld([width / 2, height / 2]);
    const moved = viewport.canvasToWorld([width / 2 - shift, height / 2]);
    const delta = moved.map((m, i) => m - centre[i]);
    viewport.setCamera({
      focalPoint: camera.focalPoint.map((v, i) => v + delta[i]),
      position: camera.position.map((v, i) => v + delta[i]),
    });
  }
}

/** Magnify a viewport by `factor` keeping the world point under `canvasPoint` (CSS px) in place. */
function zoomAbout(viewport, canvasPoint, factor) {
  const anchor = viewport.canvasToWorld(canvasPoint);
  const camera = viewport.getCamera();
  const focalPoint = camera.focalPoint.map((f, i) => anchor[i] + (f - anchor[i]) / factor);
  const position = camera.position.map((p, i) => p + focalPoint[i] - camera.focalPoint[i]);
  viewport.setCamera({ parallelScale: camera.parallelScale / factor, focalPoint, position });
}

/** Cornerstone image id of a served image (its id is content-free, 32 hex characters). */
export function imageIdOf(image) {
  return `pgpng:${image.id}`;
}

/** A {center, width} window as Cornerstone's VOI range. */
export function voiRangeOf(window) {
  return { lower: window.center - window.width / 2, upper: window.center + window.width / 2 };
}
