// Copies the dist files of the npm dependencies into vendor/, which the Go
// package embeds. Runs as npm's postinstall step, so `npm ci` alone is
// enough; vendor/ is gitignored apart from its .gitkeep.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = [
  ["node_modules/htmx.org/dist/htmx.min.js", "vendor/htmx.min.js"],
];
mkdirSync(join(here, "vendor"), { recursive: true });
for (const [from, to] of files) {
  copyFileSync(join(here, from), join(here, to));
  console.log(`copied ${from} -> ${to}`);
}
