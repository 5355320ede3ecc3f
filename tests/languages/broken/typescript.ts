let x: number = "s";
