use std::io::{self, Read, Write};

fn main() {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).unwrap();
    let (mode, rest) = input.split_once('\n').unwrap_or((input.as_str(), ""));
    match mode {
        "hello" => println!("hello"),
        "echo" => print!("{}", rest),
        "re" => panic!("boom"),
        "cpu" => {
            let mut x: u64 = 0;
            loop {
                unsafe { std::ptr::write_volatile(&mut x, x.wrapping_add(1)) }
            }
        }
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(30)),
        "mle" => {
            let mut hold: Vec<Vec<u8>> = Vec::new();
            loop {
                hold.push(vec![1u8; 16 << 20]);
            }
        }
        "ole" => {
            let block = [b'x'; 65536];
            let mut out = io::stdout().lock();
            while out.write_all(&block).is_ok() {}
        }
        "exit" => std::process::exit(3),
        _ => {}
    }
}
