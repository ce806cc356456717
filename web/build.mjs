// Builds the browser pages into web/dist with esbuild: GraphiQL and the chat demo, each one
// self-contained HTML file (its JavaScript and CSS inlined, fonts and images as data URLs), and
// web/dist/manifest.json, which records exactly what they were built from. The Go test in package
// web recomputes that record and fails when web/dist is stale.
//
// Usage: node web/build.mjs (run by `go generate ./web`). The output depends only on web/src, this
// script and the npm packages pinned in package-lock.json: two builds give the same bytes.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(web);
const rel = (p) => path.relative(root, p).split(path.sep).join('/');

// Each page: an entry point bundled into one script, inlined into its HTML template where the
// template says <!-- SCRIPT --> (and the CSS it imports, if any, where it says <!-- STYLE -->).
const pages = [
  { name: 'graphiql', entry: 'web/src/graphiql/main.jsx', template: 'web/src/graphiql/page.html' },
  { name: 'demo', entry: 'web/src/demo/main.js', template: 'web/src/demo/page.html' },
];

// The element the Go handler replaces with the page's configuration; it must appear exactly once.
const configElement = '<script id="lambdaws-config" type="application/json">{}</script>';

const sha256 = (data, enc = 'hex') => createHash('sha256').update(data).digest(enc);

async function walk(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

// packageKey turns a bundled file's path into its package's key in package-lock.json
// (node_modules/graphiql, node_modules/@graphiql/react, node_modules/a/node_modules/b).
function packageKey(input) {
  const marker = 'node_modules/';
  const at = input.lastIndexOf(marker);
  if (at < 0) return null;
  const parts = input.slice(at + marker.length).split('/');
  const name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  return input.slice(0, at + marker.length) + name;
}

function inline(template, marker, content) {
  const n = template.split(marker).length - 1;
  if (n !== 1) throw new Error(`the template has ${n} ${marker} markers, want 1`);
  return template.split(marker).join(content); // no replace(): the content may hold $& and friends
}

async function buildPage(page) {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [page.entry],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    charset: 'utf8',
    legalComments: 'eof',
    define: { 'process.env.NODE_ENV': '"production"' },
    loader: { '.woff2': 'dataurl', '.woff': 'dataurl', '.png': 'dataurl', '.svg': 'dataurl' },
    outdir: 'out',
    entryNames: '[name]',
    write: false,
    metafile: true,
    logLevel: 'warning',
  });
  // Inside <script>, the HTML parser reacts to "<!--", "<script" and "</script" even within
  // JavaScript strings and regular expressions (markdown-it has some); \x3C spells "<" in both.
  const js = result.outputFiles
    .find((f) => f.path.endsWith('.js'))
    .text.replace(/(?<!\\)<(!--|\/?script)/gi, '\\x3C$1');
  if (/<(!--|\/?script)/i.test(js)) throw new Error(`${page.name}: the script holds an escaped <!-- or <script: it cannot be inlined`);
  const css = result.outputFiles.find((f) => f.path.endsWith('.css'))?.text ?? '';
  if (/<\/style/i.test(css)) throw new Error(`${page.name}: the CSS holds </style: it cannot be inlined`);
  let html = await readFile(path.join(root, page.template), 'utf8');
  if (html.split(configElement).length !== 2) throw new Error(`${page.template}: want exactly one ${configElement}`);
  if (css) html = inline(html, '<!-- STYLE -->', `<style>${css}</style>`);
  html = inline(html, '<!-- SCRIPT -->', `<script>${js}</script>`);
  return { html, script: js, inputs: Object.keys(result.metafile.inputs) };
}

const lock = JSON.parse(await readFile(path.join(root, 'package-lock.json'), 'utf8'));
const manifest = { sources: {}, packages: {}, pages: {} };
const packages = new Set(['node_modules/esbuild']); // the bundler itself shapes the output
await mkdir(path.join(web, 'dist'), { recursive: true });
for (const page of pages) {
  const { html, script, inputs } = await buildPage(page);
  for (const input of inputs) {
    const key = packageKey(input);
    if (key) packages.add(key);
    else if (!input.startsWith('web/src/')) throw new Error(`${page.name}: bundled a file outside web/src and node_modules: ${input}`);
  }
  const file = `${page.name}.html`;
  await writeFile(path.join(web, 'dist', file), html);
  manifest.pages[page.name] = {
    file,
    bytes: Buffer.byteLength(html),
    sha256: sha256(html),
    // For the Content-Security-Policy header: the inline script's hash, as CSP spells it.
    scriptHash: `sha256-${sha256(script, 'base64')}`,
  };
}
for (const key of [...packages].sort()) {
  const entry = lock.packages?.[key];
  if (!entry?.integrity) throw new Error(`package-lock.json has no integrity for ${key}: run npm ci`);
  const installed = JSON.parse(await readFile(path.join(root, key, 'package.json'), 'utf8')).version;
  if (installed !== entry.version) {
    throw new Error(`${key} is ${installed} but package-lock.json pins ${entry.version}: run npm ci`);
  }
  manifest.packages[key] = `${entry.version} ${entry.integrity}`;
}
const sources = [path.join(web, 'build.mjs'), ...(await walk(path.join(web, 'src')))].map(rel).sort();
for (const src of sources) manifest.sources[src] = sha256(await readFile(path.join(root, src)));
await writeFile(path.join(web, 'dist', 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
for (const [name, p] of Object.entries(manifest.pages)) {
  console.log(`web: ${p.file} ${(p.bytes / 1024).toFixed(0)} KiB (${name})`);
}
