declare var require: any;
declare var process: any;

const fs = require("fs");
const input: string = fs.readFileSync(0, "latin1");
const cut = input.indexOf("\n");
const mode = cut < 0 ? input : input.slice(0, cut);
const rest = cut < 0 ? "" : input.slice(cut + 1);

switch (mode) {
  case "hello": process.stdout.write("hello\n"); break;
  case "echo": process.stdout.write(rest); break;
  case "re": throw new Error("boom");
  case "cpu": { let x = 0; while (x >= 0) x++; break; }
  case "sleep": Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000); break;
  case "mle": { const hold: number[][] = []; for (;;) hold.push(new Array(1 << 20).fill(hold.length)); }
  case "ole": { const s = "x".repeat(65536); for (;;) fs.writeSync(1, s); }
  case "exit": process.exit(3);
}
