const fs = require("fs");
const lines = fs.readFileSync(0, "utf8").split("\n");
const mode = lines[0];
if (mode === "hello") console.log("hello");
else if (mode === "echo") fs.writeSync(1, lines.slice(1).join("\n"));
else if (mode === "re") null.boom();
else if (mode === "cpu") { let x = 0; for (;;) x++; }
else if (mode === "sleep") setTimeout(() => {}, 30000);
else if (mode === "mle") { const hold = []; for (;;) hold.push(new Array(1 << 20).fill(1.5)); }
else if (mode === "ole") { const s = "x".repeat(65536); for (;;) fs.writeSync(1, s); }
else if (mode === "exit") process.exit(3);
