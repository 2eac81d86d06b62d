import PyAirtableModels

/// How much one request may ask of the server: the size and nesting of what it sends, and the work a
/// records list may do for it. Past a limit the request is refused with a 4xx naming the limit, and the
/// server goes on serving everyone else.
///
/// ```swift
/// var configuration = ServerConfiguration()
/// configuration.limits.formula.maximumDepth = 64
/// configuration.limits.maximumFilterScanRows = 100_000
/// ```
public struct RequestLimits: Sendable {
    /// Length, token count and nesting of formulas: a records list's `filter=`, and view filters when a
    /// view is created or changed (422 `VALIDATION_ERROR` with the `position` past the limit).
    public var formula: Formula.Limits
    /// The deepest nesting of arrays and objects in a JSON request body (400 past it; default 64).
    /// `JSONDecoder` itself stops at 512; the contract's bodies nest a handful of levels.
    public var maximumJSONDepth: Int
    /// The longest `cursor` a records list accepts, in characters (422 past it; default 4,096).
    public var maximumCursorLength: Int
    /// The most sort keys in a records list's `sort=` or a view's sort (422 past it; default 8). Each
    /// key nests the page query's keyset condition deeper, and SQLite's parser refuses past about 14.
    public var maximumSortKeys: Int
    /// The longest request line plus headers, in bytes (default 81,920, NIO's own default): the URL and
    /// each header must fit, and so must all of them together. A GET with a 16,000-character URL fits;
    /// a request past it is answered 431 (a bare status, as no request was read) and its connection
    /// closed.
    public var maximumRequestHeadSize: Int
    /// The most rows one records list may read to evaluate the part of a filter SQLite cannot run
    /// (see `FormulaSQL`) before it is refused with 422 (default 500,000). Filters SQLite runs whole
    /// read nothing extra and are not counted.
    public var maximumFilterScanRows: Int
    /// How long one records list may spend on such a scan before it is refused with 422 (default 10 s).
    public var maximumFilterScanDuration: Duration
    /// The most choices a select field may have after a write with Airtable's `typecast` added the
    /// ones it names (422 past it; default 1,000): a client cannot grow a schema without bound by
    /// writing new values.
    public var maximumSelectChoices: Int
    /// The longest comment text, in characters. Default: 10,000.
    public var maximumCommentLength: Int
    /// The clock the scan duration is measured on; injected so tests move time without sleeping.
    public var clock: any Clock<Duration>

    public init(
        formula: Formula.Limits = .init(),
        maximumJSONDepth: Int = 64,
        maximumCursorLength: Int = 4096,
        maximumSortKeys: Int = 8,
        maximumRequestHeadSize: Int = 80 * 1024,
        maximumFilterScanRows: Int = 500_000,
        maximumFilterScanDuration: Duration = .seconds(10),
        maximumSelectChoices: Int = 1000,
        maximumCommentLength: Int = 10_000,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.formula = formula
        self.maximumJSONDepth = maximumJSONDepth
        self.maximumCursorLength = maximumCursorLength
        self.maximumSortKeys = maximumSortKeys
        self.maximumRequestHeadSize = maximumRequestHeadSize
        self.maximumFilterScanRows = maximumFilterScanRows
        self.maximumFilterScanDuration = maximumFilterScanDuration
        self.maximumSelectChoices = maximumSelectChoices
        self.maximumCommentLength = maximumCommentLength
        self.clock = clock
    }
}
