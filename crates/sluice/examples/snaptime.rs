use postgres::{Client, NoTls};
use std::time::Instant;
fn cpu(pid: i32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn me() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn main() {
    let conn = "host=/tmp/prof port=55432 user=postgres dbname=bench_schema";
    for _ in 0..3 {
        let t = Instant::now();
        let mut w = Client::connect(conn, NoTls).unwrap();
        let mut h = Client::connect(conn, NoTls).unwrap();
        let pw: i32 = w.query_one("select pg_backend_pid()", &[]).unwrap().get(0);
        let ph: i32 = h.query_one("select pg_backend_pid()", &[]).unwrap().get(0);
        let (s0, c0) = (cpu(pw) + cpu(ph), me());
        let c = t.elapsed();
        let (s, n) = sluice::catalog::snapshot_counting(
            &mut w,
            if std::env::var_os("ONE").is_some() {
                None
            } else {
                Some(&mut h)
            },
            &[],
            1000,
        )
        .unwrap();
        let a = t.elapsed();
        let (s1, c1) = (cpu(pw) + cpu(ph), me());
        let (s2, _) = sluice::catalog::snapshot_counting(
            &mut w,
            if std::env::var_os("ONE").is_some() {
                None
            } else {
                Some(&mut h)
            },
            &[],
            1000,
        )
        .unwrap();
        let b = t.elapsed();
        let (s3, c3) = (cpu(pw) + cpu(ph), me());
        let d = sluice::catalog::diff(&s, &s2);
        eprintln!("cold {:?} (server {:.2} client {:.2}) warm {:?} (server {:.2} client {:.2}) diff {:?} {n:?} {}", a - c, s1 - s0, c1 - c0, b - a, s3 - s1, c3 - c1, t.elapsed() - b, d.is_empty());
    }
}
