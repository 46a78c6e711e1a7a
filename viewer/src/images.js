// Fetch the server's 16-bit PNGs, decode them with fast-png (the browser's own decoder yields
// 8 bits) and register them with Cornerstone as local images, one image id per served image.

import { imageLoader, cache, utilities } from '@cornerstonejs/core';
import { decode } from 'fast-png';

/** Decode a PNG into one grey channel: {width, height, pixels: Uint16Array | Uint8Array, depth}. */
export function decodeGreyPng(bytes) {
  const png = decode(bytes);
  const { width, height, channels, depth } = png;
  if (depth !== 8 && depth !== 16) throw new Error(`unsupported PNG bit depth ${depth}`);
  if (png.palette) throw new Error('palette PNGs are not greyscale images');
  let pixels = png.data;
  if (channels !== 1) {
    // Grey + alpha or RGB(A) written as grey: keep the first channel.
    const Out = depth === 16 ? Uint16Array : Uint8Array;
    const grey = new Out(width * height);
    for (let i = 0; i < grey.length; i += 1) grey[i] = pixels[i * channels];
    pixels = grey;
  } else if (!(pixels instanceof Uint16Array) && !(pixels instanceof Uint8Array)) {
    pixels = depth === 16 ? new Uint16Array(pixels) : new Uint8Array(pixels);
  }
  return { width, height, pixels, depth };
}

/**
 * Register decoded pixels under `imageId`. World units are stored-image pixels (spacing 1), so a
 * rectangle's world corners convert to stored-image pixels exactly; pixel (0, 0) is the top-left
 * corner of the top-left pixel, as `utilities.worldToImageCoords` returns it.
 */
export function registerImage(imageId, decoded, window = null) {
  if (cache.getImage(imageId)) return cache.getImage(imageId);
  // Cornerstone asks every image for its series' modality; the local image carries none.
  utilities.genericMetadataProvider.add(imageId, { type: 'generalSeriesModule', metadata: { modality: 'MG' } });
  const image = imageLoader.createAndCacheLocalImage(imageId, {
    scalarData: decoded.pixels,
    dimensions: [decoded.width, decoded.height],
    spacing: [1, 1],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 1, 0],
    frameOfReferenceUID: `perceptiongap:${imageId}`,
    targetBuffer: { type: decoded.pixels.constructor.name },
  });
  if (window) {
    image.windowCenter = window.center;
    image.windowWidth = window.width;
  }
  return image;
}

const pending = new Map();

/**
 * Fetch, decode and register one image (once; concurrent calls share the work). `fetchBytes`
 * returns an ArrayBuffer. Resolves to the image id.
 */
export function loadImage(imageId, fetchBytes, window = null) {
  if (cache.getImage(imageId)) return Promise.resolve(imageId);
  if (!pending.has(imageId)) {
    const work = fetchBytes()
      .then((bytes) => {
        registerImage(imageId, decodeGreyPng(bytes), window);
        return imageId;
      })
      .finally(() => pending.delete(imageId));
    pending.set(imageId, work);
  }
  return pending.get(imageId);
}

/** Drop images no longer needed (the exam just submitted) from Cornerstone's cache. */
export function forgetImages(imageIds) {
  for (const id of imageIds) {
    if (cache.getImage(id)) cache.removeImageLoadObject(id, { force: true });
  }
}
