// Builds the web chat into dist/: bundles src/main.js (and MQTT.js) with
// esbuild into dist/app.js, and copies the static files next to it.
// dist/ is embedded into the hearth binary by webclient.go.
import * as esbuild from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const dist = join(here, "dist");

// Static files served as they are.
const STATIC = ["index.html", "style.css", "favicon.svg"];

// Empty dist/, but keep dist/.gitkeep: git tracks the folder so that
// go:embed finds it even before the first build.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== ".gitkeep") {
    await rm(join(dist, name), { recursive: true, force: true });
  }
}

await esbuild.build({
  entryPoints: [join(src, "main.js")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: "linked",
  logLevel: "info",
});

for (const name of STATIC) {
  await copyFile(join(src, name), join(dist, name));
}
console.log(`copied ${STATIC.join(", ")} into dist/`);
