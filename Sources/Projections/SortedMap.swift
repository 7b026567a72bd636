/// A small map from strings to values kept in key order: a profile's traits, channel and
/// category counts and consent purposes (a handful to a few dozen keys each).
///
/// A profile's stored form lists these in key order, and queries render them in key order.
/// Kept as dictionaries, every decode hashed each key in, every encode and render sorted them
/// back out. Here decode appends, encode and render walk the arrays, and a lookup is a binary
/// search over a few keys. Keys compare with `String`'s `<` and `==` (as the dictionaries and
/// their sorts did), so the order and the bytes written are the same.
struct SortedMap<Value>: Sequence, ExpressibleByDictionaryLiteral {
    private(set) var keys: [String] = []
    private(set) var values: [Value] = []

    init() {}

    init(dictionaryLiteral elements: (String, Value)...) {
        for (k, v) in elements { self[k] = v }
    }

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    mutating func reserveCapacity(_ n: Int) {
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
    }

    /// Where `key` is, or where it would go.
    private func index(_ key: String) -> (Int, found: Bool) {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return (lo, lo < keys.count && keys[lo] == key)
    }

    subscript(key: String) -> Value? {
        get {
            let (i, found) = index(key)
            return found ? values[i] : nil
        }
        set {
            let (i, found) = index(key)
            switch (found, newValue) {
            case (true, let v?): values[i] = v
            case (true, nil): keys.remove(at: i); values.remove(at: i)
            case (false, let v?): keys.insert(key, at: i); values.insert(v, at: i)
            case (false, nil): break
            }
        }
    }

    subscript(key: String, default value: @autoclosure () -> Value) -> Value {
        get { self[key] ?? value() }
        set { self[key] = newValue }
    }

    /// Adds an entry read from a stored form, which lists keys in order: an append, unless
    /// the key does not sort after the last one (then it goes where it belongs).
    mutating func appendInOrder(_ key: String, _ value: Value) {
        if let last = keys.last, !(last < key) {
            self[key] = value
        } else {
            keys.append(key)
            values.append(value)
        }
    }

    func makeIterator() -> Iterator { Iterator(map: self) }

    struct Iterator: IteratorProtocol {
        let map: SortedMap
        var i = 0
        mutating func next() -> (key: String, value: Value)? {
            guard i < map.keys.count else { return nil }
            defer { i += 1 }
            return (map.keys[i], map.values[i])
        }
    }
}
