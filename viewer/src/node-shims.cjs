// Stand-ins for the two Node built-ins that vtk.js's XML mesh reader (through xmlbuilder2) names.
// The reading page never loads meshes; these only let the bundle evaluate in a browser.
class EventEmitter {
  on() { return this; }
  once() { return this; }
  off() { return this; }
  emit() { return false; }
  removeListener() { return this; }
}
module.exports = { EventEmitter, URL: globalThis.URL, URLSearchParams: globalThis.URLSearchParams };
