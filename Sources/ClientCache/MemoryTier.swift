/// The in-memory LRU tier, bounded by entries and bytes.
///
/// Nodes live in one array linked by index, so a hit moves a node to the front without allocating.
/// Not thread-safe: ``ClientCache`` keeps it inside a `Mutex`.
struct MemoryTier {
    private struct Node {
        var entry: CacheEntry
        var size: Int
        var previous: Int
        var next: Int
    }

    let maximumEntries: Int
    let maximumBytes: Int
    private(set) var bytes = 0
    private var nodes: [Node?] = []
    private var freeSlots: [Int] = []
    private var index: [String: Int] = [:]
    /// The most recently used node, or -1.
    private var head = -1
    /// The least recently used node, or -1.
    private var tail = -1

    init(maximumEntries: Int, maximumBytes: Int) {
        self.maximumEntries = max(0, maximumEntries)
        self.maximumBytes = max(0, maximumBytes)
    }

    var count: Int { index.count }

    /// The entry for `key`, marked most recently used.
    mutating func get(_ key: String) -> CacheEntry? {
        guard let slot = index[key], let node = nodes[slot] else { return nil }
        moveToFront(slot)
        return node.entry
    }

    /// Stores `entry`, evicting least recently used entries to stay within bounds.
    /// - Returns: How many entries were evicted.
    @discardableResult
    mutating func set(_ entry: CacheEntry) -> Int {
        let size = entry.size
        remove(entry.key)
        guard size <= maximumBytes, maximumEntries > 0 else { return 0 }
        var evicted = 0
        while tail >= 0, index.count + 1 > maximumEntries || bytes + size > maximumBytes {
            if let node = nodes[tail] { remove(node.entry.key) }
            evicted += 1
        }
        let node = Node(entry: entry, size: size, previous: -1, next: head)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        if head >= 0 { nodes[head]?.previous = slot }
        head = slot
        if tail < 0 { tail = slot }
        index[entry.key] = slot
        bytes += size
        return evicted
    }

    /// Removes the entry for `key`, if any.
    mutating func remove(_ key: String) {
        guard let slot = index.removeValue(forKey: key), let node = nodes[slot] else { return }
        unlink(slot, node)
        nodes[slot] = nil
        freeSlots.append(slot)
        bytes -= node.size
    }

    /// Removes the entries `predicate` picks.
    mutating func removeAll(where predicate: (CacheEntry) -> Bool) {
        for slot in nodes.indices {
            guard let node = nodes[slot], predicate(node.entry) else { continue }
            index[node.entry.key] = nil
            unlink(slot, node)
            nodes[slot] = nil
            freeSlots.append(slot)
            bytes -= node.size
        }
    }

    mutating func removeAll() {
        nodes.removeAll()
        freeSlots.removeAll()
        index.removeAll()
        head = -1
        tail = -1
        bytes = 0
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != head, let node = nodes[slot] else { return }
        unlink(slot, node)
        nodes[slot]?.previous = -1
        nodes[slot]?.next = head
        if head >= 0 { nodes[head]?.previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    private mutating func unlink(_ slot: Int, _ node: Node) {
        if node.previous >= 0 { nodes[node.previous]?.next = node.next } else { head = node.next }
        if node.next >= 0 { nodes[node.next]?.previous = node.previous } else { tail = node.previous }
    }
}
