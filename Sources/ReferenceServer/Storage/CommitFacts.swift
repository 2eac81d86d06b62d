import GRDB
import Synchronization

/// What the committed writes tell without a read: the newest event seq, and whether webhooks
/// changed. Background workers that wake on every commit (realtime fan-out with nobody connected,
/// the webhook worker with no webhook enabled) consult it instead of reading the database.
public final class CommitFacts: Sendable {
    private let head: Atomic<Int64>
    private let webhooks = Atomic<UInt64>(0)

    init(head: Int64) {
        self.head = Atomic(head)
    }

    /// The seq of the newest committed event (or of the newest ever, when the log is empty).
    public var eventHead: Int64 { head.load(ordering: .acquiring) }

    /// Changes each time a commit touches the `webhooks` table. Read it before a read transaction
    /// begins, to know later whether what that read found may still hold.
    public var webhooksGeneration: UInt64 { webhooks.load(ordering: .acquiring) }

    func committed(head newHead: Int64?, webhooksChanged: Bool) {
        if let newHead {
            // The writer and, on PostgreSQL, the listener both report heads: the maximum wins, never
            // moving back.
            var current = head.load(ordering: .relaxed)
            while current < newHead {
                let (exchanged, original) = head.compareExchange(
                    expected: current,
                    desired: newHead,
                    ordering: .acquiringAndReleasing
                )
                if exchanged { break }
                current = original
            }
        }
        if webhooksChanged { webhooks.add(1, ordering: .releasing) }
    }
}

/// Feeds ``CommitFacts`` from the writer connection, after each commit.
final class CommitFactsObserver: TransactionObserver {
    private let facts: CommitFacts
    private var newestEvent: Int64?
    private var webhooksChanged = false

    init(facts: CommitFacts) {
        self.facts = facts
    }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        switch eventKind {
        case .insert(let table): return table == "events" || table == "webhooks"
        case .update(let table, _), .delete(let table): return table == "webhooks"
        }
    }

    func databaseDidChange(with event: DatabaseEvent) {
        if event.tableName == "events" {
            newestEvent = max(newestEvent ?? event.rowID, event.rowID)
        } else {
            webhooksChanged = true
        }
    }

    func databaseDidCommit(_ db: Database) {
        facts.committed(head: newestEvent, webhooksChanged: webhooksChanged)
        reset()
    }

    func databaseDidRollback(_ db: Database) {
        reset()
    }

    private func reset() {
        newestEvent = nil
        webhooksChanged = false
    }
}
