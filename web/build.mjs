// Builds the console into ../internal/ui/dist, which the shoal binary
// embeds (go:embed): one script, one style sheet and the page; nothing is
// loaded from elsewhere at run time.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = "../internal/ui/dist";
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["es2020"],
  outdir: out,
  loader: { ".css": "css" },
  logLevel: "warning",
});
copyFileSync("src/index.html", `${out}/index.html`);
