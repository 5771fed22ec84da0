// Fails when the committed types differ from the ones generated from openapi.json now.
import { readFileSync, rmSync } from "node:fs";

const [committed, fresh] = process.argv.slice(2);
const same = readFileSync(committed, "utf8") === readFileSync(fresh, "utf8");
rmSync(fresh, { force: true });
if (!same) {
  console.error(`${committed} is stale: run \`npm run generate\` after \`python -m tracedb openapi > openapi.json\``);
  process.exit(1);
}
console.log(`${committed} matches openapi.json`);
