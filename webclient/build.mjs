// Builds the web chat into dist/: bundles src/main.js (and MQTT.js) and
// src/style.css with esbuild under content-hashed names (app-HASH.js,
// style-HASH.css, favicon-HASH.svg, and their source maps), writes
// index.html from src/index.html with those names, and beside every file
// its gzip (.gz) and brotli (.br) forms, made once here at the highest
// levels. It also copies the manifest and icons (stable names) and builds
// the service worker sw.js with the list of files to precache, and the
// emoji picker's data. dist/ is embedded into the hearth binary by
// webclient.go, which serves the hashed files as immutable and index.html
// with an ETag.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const dist = join(here, "dist");

// Empty dist/, but keep dist/.gitkeep: git tracks the folder so that
// go:embed finds it even before the first build.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== ".gitkeep") {
    await rm(join(dist, name), { recursive: true, force: true });
  }
}

// The emoji picker's data (emoji-picker-element-data), one file per page
// language, under content-hashed names like the bundle's, so the picker
// loads it from the page's own origin. The bundle learns the names
// through HEARTH_EMOJI_DATA.
const emojiData = {};
for (const [code, file] of [["en", "en/emojibase/data.json"], ["de", "de/cldr/data.json"]]) {
  const data = await readFile(join(here, "node_modules", "emoji-picker-element-data", file));
  const name = `emoji-${code}-${base32(createHash("sha256").update(data).digest()).slice(0, 8)}.json`;
  await writeFile(join(dist, name), data);
  emojiData[code] = name;
}

function base32(buf) {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, out = "";
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += abc[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

const result = await esbuild.build({
  entryPoints: [
    { in: join(src, "main.js"), out: "app" },
    { in: join(src, "style.css"), out: "style" },
  ],
  outdir: dist,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  loader: { ".svg": "file" }, // the favicon, referenced by style.css
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: "linked",
  metafile: true,
  define: { HEARTH_EMOJI_DATA: JSON.stringify(emojiData) },
  logLevel: "info",
});

// boot.js runs as a classic script in <head> (the theme before the first
// paint): an IIFE, built on its own.
const boot = await esbuild.build({
  entryPoints: [{ in: join(src, "boot.js"), out: "boot" }],
  outdir: dist,
  entryNames: "[name]-[hash]",
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  metafile: true,
  logLevel: "info",
});
for (const [k, v] of Object.entries(boot.metafile.outputs)) result.metafile.outputs[k] = v;

// The hashed name of each source file, from esbuild's metafile: entry
// points by their entryPoint, assets (the favicon) by their only input.
const hashed = new Map();
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  if (out.endsWith(".map")) continue;
  const input = meta.entryPoint ?? Object.keys(meta.inputs)[0];
  hashed.set(relative(src, join(process.cwd(), input)), relative(dist, join(process.cwd(), out)));
}

// index.html keeps its own name (browsers ask for it again each time).
// src/index.html names the source files; dist/index.html the hashed
// ones. Each reference must be there exactly once, so that a change to
// the page cannot silently keep a name that is not built.
let page = await readFile(join(src, "index.html"), "utf8");
for (const [attr, name] of [["href", "favicon.svg"], ["href", "style.css"], ["src", "main.js"], ["src", "boot.js"]]) {
  const ref = `${attr}="${name}"`;
  const to = hashed.get(name);
  if (!to || page.split(ref).length !== 2) {
    throw new Error(`index.html: want ${ref} exactly once, and a hashed output for src/${name} (got ${to})`);
  }
  page = page.replace(ref, `${attr}="${to}"`);
}
await writeFile(join(dist, "index.html"), page);

// Files under stable names (the installed app and the browser ask for
// them by name): the manifest and the icons, as they are.
const stable = ["manifest.webmanifest"];
await copyFile(join(src, "manifest.webmanifest"), join(dist, "manifest.webmanifest"));
for (const name of (await readdir(join(src, "icons"))).filter((n) => n.endsWith(".png")).sort()) {
  await copyFile(join(src, "icons", name), join(dist, name));
  stable.push(name);
}

// The service worker, at /sw.js: it precaches the shell of this build
// ("/" for index.html, the hashed files, the stable ones); its version is
// a hash of all their bytes, so each build makes a new sw.js and cache.
const shell = ["/", ...[...hashed.values()].map((n) => "/" + n), ...stable.map((n) => "/" + n)];
const version = createHash("sha256");
for (const u of shell) {
  version.update(u);
  version.update(await readFile(join(dist, u === "/" ? "index.html" : u.slice(1))));
}
await esbuild.build({
  entryPoints: [{ in: join(src, "sw.js"), out: "sw" }],
  outdir: dist,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  define: { __SHELL__: JSON.stringify(shell), __VERSION__: JSON.stringify(version.digest("hex").slice(0, 16)) },
  logLevel: "info",
});

// Compressed forms of every file, kept even where they are not smaller
// (the favicon), so that every file can be served in each encoding.
let plain = 0, br = 0;
for (const name of await readdir(dist)) {
  if (name.startsWith(".")) continue;
  const data = await readFile(join(dist, name));
  const b = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  await writeFile(join(dist, name + ".br"), b);
  await writeFile(join(dist, name + ".gz"), gzipSync(data, { level: constants.Z_BEST_COMPRESSION }));
  if (!name.endsWith(".map")) {
    plain += data.length;
    br += b.length;
  }
}
console.log(`wrote index.html -> ${[...hashed.values()].join(", ")}; the page is ${plain} bytes, ${br} with brotli`);
