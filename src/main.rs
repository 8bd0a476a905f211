fn main() {
    println!("koji-adjutant {}", env!("CARGO_PKG_VERSION"));
}
