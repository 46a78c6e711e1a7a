// Build the reading page's bundle: one minified ES module with Cornerstone3D, fast-png and the
// page's code, written into the Python package with the licence notices of every bundled
// package. Run `npm ci && npm run build` in viewer/; users and CI use the committed output.

import { build } from 'esbuild';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, '../src/perceptiongap/readers/static');

// vtk.js's XML mesh reader (unused here) pulls in xmlbuilder2, which names Node's `url` and
// `events`; point both at a small browser stand-in instead of failing the build.
const nodeShims = {
  name: 'node-shims',
  setup(b) {
    b.onResolve({ filter: /^(url|events)$/ }, () => ({ path: join(here, 'src/node-shims.cjs') }));
  },
};

const result = await build({
  entryPoints: [join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  minify: true,
  target: ['chrome110', 'firefox115', 'safari16'],
  outfile: join(out, 'reader.js'),
  metafile: true,
  legalComments: 'none', // the full notices go to THIRD_PARTY_LICENSES.txt
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [nodeShims],
});

// Every package that contributed code to the bundle, found from the inputs esbuild used.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/^(.*node_modules\/)((?:@[^/]+\/)?[^/]+)\//);
  if (!match) continue;
  const root = join(here, match[1], match[2]);
  if (packages.has(root)) continue;
  const meta = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  packages.set(root, meta);
}

function licenceText(root) {
  const names = readdirSync(root).filter((name) => /^(licen[cs]e|copying|notice)(\.|$|-)/i.test(name));
  return names.map((name) => readFileSync(join(root, name), 'utf8').trim()).join('\n\n');
}

// The standard MIT terms, for MIT packages whose npm tarball carries no licence file.
const MIT_TERMS = `Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.`;

function declaredLicence(meta, licence) {
  const holders = [meta.author, ...(meta.contributors ?? [])]
    .filter(Boolean)
    .map((p) => (typeof p === 'string' ? p : p.name))
    .join(', ');
  const repo = typeof meta.repository === 'string' ? meta.repository : meta.repository?.url ?? '';
  const note = `The npm package ships no licence file; its package.json declares ${licence}` +
    `${holders ? ` and names ${holders}` : ''}${repo ? ` (source: ${repo})` : ''}.`;
  if (licence !== 'MIT') return note;
  return `${note} The MIT terms:\n\nCopyright (c) ${holders || `the authors of ${meta.name}`}\n\n${MIT_TERMS}`;
}

const sections = [...packages.entries()]
  .sort(([, a], [, b]) => a.name.localeCompare(b.name))
  .map(([root, meta]) => {
    const licence = typeof meta.license === 'string' ? meta.license : meta.license?.type ?? 'see below';
    const text = licenceText(root) || declaredLicence(meta, licence);
    return `${'='.repeat(78)}\n${meta.name} ${meta.version}  (${licence})\n${meta.homepage ?? ''}\n${'='.repeat(78)}\n\n${text}\n`;
  });

const header = `Third-party software in reader.js
=================================

reader.js, the reading page of perceptiongap's reader study, is built by viewer/build.mjs with
esbuild from the packages below (exact versions: viewer/package-lock.json). Their licences and
notices follow. perceptiongap's own code is Apache-2.0.

${[...packages.values()].map((m) => `- ${m.name} ${m.version}`).sort().join('\n')}

`;
writeFileSync(join(out, 'THIRD_PARTY_LICENSES.txt'), header + sections.join('\n'));

const size = readFileSync(join(out, 'reader.js')).length;
console.log(`reader.js: ${(size / 1e6).toFixed(2)} MB from ${packages.size} packages -> ${relative(process.cwd(), out)}`);
if (!existsSync(join(out, 'index.html'))) throw new Error('index.html is missing beside the bundle');
