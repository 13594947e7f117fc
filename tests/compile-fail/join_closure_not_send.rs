// Either half of `join` may be stolen by another worker: both must be `Send`.
use std::rc::Rc;

fn main() {
    let shared = Rc::new(5);
    let (_a, _b) = filch::join(|| 1, move || *shared);
}
