// libFuzzer target: the client's Server-Sent Events parser. Built by scripts/fuzz.sh.

private func events(_ bytes: [UInt8], chunk: Int) -> ([ServerSentEvent], Bool) {
    var parser = ServerSentEventParser(maximumLineLength: 64, maximumEventSize: 256)
    var events: [ServerSentEvent] = []
    var start = 0
    do {
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            events += try parser.feed(bytes[start..<end])
            start = end
        }
    } catch {
        return (events, true)
    }
    return (events, false)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func sseFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let chunk = size > 0 ? Int(bytes[0] % 13) + 1 : 1
    let whole = events(bytes, chunk: max(1, size))
    let chunked = events(bytes, chunk: chunk)
    // How bytes arrive never changes what comes out, and no event is larger than the bound.
    precondition(whole.1 == chunked.1, "chunking changed whether the stream failed")
    if !whole.1 { precondition(whole.0 == chunked.0, "chunking changed the events") }
    precondition(whole.0.allSatisfy { $0.data.utf8.count <= 256 })
    return 0
}
