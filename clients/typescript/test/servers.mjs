// Starts live_server.py (real API servers on real databases) and stops it after the tests.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const helper = fileURLToPath(new URL("./live_server.py", import.meta.url));

export async function startServers() {
  const child = spawn(process.env.PYTHON ?? "python", [helper], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`live_server.py exited early with ${code}`);
  });
  const [line] = await Promise.race([once(lines, "line"), exited]);
  const info = JSON.parse(line);
  info.stop = async () => {
    const done = once(child, "exit");
    child.stdin.end();
    await done;
  };
  return info;
}
