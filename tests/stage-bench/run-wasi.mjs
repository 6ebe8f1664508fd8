// Run a wasm32-wasip1 program under node's WASI (V8), with no file system access.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env } from "node:process";

const wasi = new WASI({ version: "preview1", args: [argv[2]], env: {}, preopens: {} });
const module = await WebAssembly.compile(await readFile(argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
wasi.start(instance);
