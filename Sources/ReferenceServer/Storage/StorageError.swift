import Foundation
import PyAirtableModels

/// Why a repository refused or could not do what it was asked, in the storage's own terms.
///
/// Repositories (``SQLiteStore`` and any other implementation of the protocols in
/// `Repositories.swift`) throw it instead of an HTTP status; ``ErrorMiddleware`` maps it to the
/// contract's error body (status, code, message, headers, the current resource of a 412) in one
/// place, ``ErrorMiddleware/serverError(for:)``.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No such resource, or one the caller may not see (which must look the same). `what` names it
    /// as the message says it: "record", "record 'rec…'", "workspace".
    case notFound(_ what: String)
    /// The request asks for something the data does not allow (a field that does not exist, a
    /// duplicate name, too many of something); `field` and `position` point at the offending part.
    case invalid(_ message: String, field: String? = nil, position: Int? = nil)
    /// The change conflicts with the state of the store (an existing account, the last owner).
    case conflict(_ message: String)
    /// The caller is a member but their role does not allow this.
    case forbidden(_ message: String)
    /// A mutation without an authenticated actor.
    case unauthenticated
    /// An `If-Match` version that is not the resource's: `current` is the resource as it is now,
    /// at `version`.
    case versionMismatch(current: JSONValue?, version: Int)
    /// An idempotency key used again with a different request.
    case idempotencyKeyReused(key: String)
    /// The stored answer of an idempotency key cannot be read; running the write again could do it
    /// twice.
    case idempotentAnswerUnreadable(key: String, reason: String)
    /// A records list stopped by a scan limit of ``RequestLimits``; `reason` names the limit.
    case filterScanLimit(_ reason: String)
    /// An upload that does not fit in what is left of the uploader's quota.
    case uploadQuotaExceeded(used: Int64, quota: Int64)
    /// Events after `since` were already trimmed from the log (which now starts after
    /// `trimmedThrough`): the reader must resynchronise.
    case eventsTrimmed(since: Int64, trimmedThrough: Int64)
    /// The database cannot be reached (a PostgreSQL server restarting, a connection lost mid-write):
    /// nothing was acknowledged, though a write whose connection died at its commit may have been
    /// applied; retried with the same idempotency key after `retryAfter` seconds, it is applied once.
    case unavailable(_ reason: String, retryAfter: Int)
    /// Operation `index` of a batch failed with `error`.
    indirect case inOperation(_ index: Int, _ error: StorageError)

    public var description: String { "\(ErrorMiddleware.serverError(for: self))" }
}
