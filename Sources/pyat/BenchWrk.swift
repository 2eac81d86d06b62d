import ArgumentParser
import Foundation
import PyAirtableClient

#if canImport(Glibc)
import Glibc
#endif

/// The write load of `pyat bench cluster`: wrk (Debian's `wrk`) sending single-record PATCHes over
/// keep-alive connections, each answer's record id and version kept so the subscribers can be
/// checked against every acknowledged write.
///
/// wrk rather than an in-process HTTP client: the load shares the machine's cores with what it
/// measures, and wrk spends a tenth of the CPU time per request that AsyncHTTPClient does here
/// (measured on this 2-core machine: ~0.03 ms against ~0.28 ms), so more of the machine is left to
/// the servers and the figures are theirs.
enum WrkLoad {
    /// What one run acknowledged and how long it took.
    struct Result: Sendable {
        /// Every write answered 200 with a version.
        var written: [Written] = []
        /// Answers other than 200 with a record id and version, and socket errors.
        var errors = 0
        var firstError: String?
        var p50Milliseconds = Double.nan
        var p99Milliseconds = Double.nan
        var maxMilliseconds = Double.nan
        /// The time the requests were sent for, as wrk measured it.
        var seconds = 0.0
    }

    /// The script wrk runs: PATCHes cycling over the record paths given after the field name, and
    /// each answer's `id` and `version` (or the failure) kept in the thread; `done` writes them all
    /// to `PYAT_WRK_OUT` with the latency percentiles (microseconds).
    static let script = """
        local paths = {}
        local field = ""
        local sent = 0
        acks = {}
        failures = 0
        first_failure = ""

        function init(args)
          field = args[1]
          for i = 2, #args do paths[#paths + 1] = args[i] end
          wrk.headers["Content-Type"] = "application/json"
          wrk.headers["Authorization"] = "Bearer " .. os.getenv("PYAT_WRK_TOKEN")
        end

        function request()
          sent = sent + 1
          local path = paths[(sent % #paths) + 1]
          return wrk.format("PATCH", path, nil, '{"fields":{"' .. field .. '":' .. sent .. '}}')
        end

        function response(status, headers, body)
          if status == 200 then
            local id = string.match(body, '"id":"(rec%w+)"')
            local version = string.match(body, '"version":(%d+)')
            if id and version then
              acks[#acks + 1] = id .. " " .. version
              return
            end
          end
          failures = failures + 1
          if first_failure == "" then first_failure = status .. " " .. string.sub(body, 1, 300) end
        end

        local threads = {}

        function setup(thread)
          threads[#threads + 1] = thread
        end

        function done(summary, latency, requests)
          local out = assert(io.open(os.getenv("PYAT_WRK_OUT"), "w"))
          local e = summary.errors
          local failed = e.connect + e.read + e.write + e.timeout
          local first = ""
          for _, thread in ipairs(threads) do
            failed = failed + thread:get("failures")
            if first == "" then first = thread:get("first_failure") end
          end
          out:write("duration_us ", summary.duration, "\\n")
          out:write("p50_us ", latency:percentile(50.0), "\\n")
          out:write("p99_us ", latency:percentile(99.0), "\\n")
          out:write("max_us ", latency.max, "\\n")
          out:write("errors ", failed, "\\n")
          out:write("socket ", e.connect, " ", e.read, " ", e.write, " ", e.timeout, "\\n")
          out:write("first_error ", (string.gsub(first, "\\n", " ")), "\\n")
          for _, thread in ipairs(threads) do
            for _, ack in ipairs(thread:get("acks")) do out:write("ack ", ack, "\\n") end
          end
          out:close()
        end
        """

    /// `wrk` on the `PATH` (or in /usr/bin).
    static func locate() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin"] {
            let candidate = "\(directory)/wrk"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CommandFailure("the write load needs wrk: apt-get install wrk")
    }

    /// Runs wrk against `server` for `seconds` with `connections` keep-alive connections, each
    /// request a PATCH of `field` on the next of `records`. wrk is killed if it has not ended
    /// `seconds` + 60 s later (the run then fails).
    static func run(
        wrk: String,
        server: String,
        token: String,
        field: String,
        records: [RecordID],
        connections: Int,
        seconds: Int
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-wrk-\(UUID())")
        try FileManager.default.createDirectory(
            at: directory,
            withIntermediateDirectories: false,
            attributes: [
                .posixPermissions: 0o700
            ]
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        let scriptFile = directory.appendingPathComponent("writes.lua")
        let outFile = directory.appendingPathComponent("out")
        let logFile = directory.appendingPathComponent("log")
        try Data(script.utf8).write(to: scriptFile)
        // The token travels in the environment (the script sets the header), not on the command line.
        let arguments =
            [
                "-t1", "-c\(connections)", "-d\(seconds)s", "--timeout", "30s", "-s", scriptFile.path, server, "--",
                field,
            ]
            + records.map { "/api/v1/records/\($0)" }
        let status = try await spawnAndWait(
            wrk,
            arguments,
            environment: ["PYAT_WRK_OUT": outFile.path, "PYAT_WRK_TOKEN": token],
            log: logFile.path,
            within: .seconds(seconds + 60)
        )
        let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        guard status == 0, let text = try? String(contentsOf: outFile, encoding: .utf8) else {
            throw CommandFailure("wrk failed (status \(status)): \(log.suffix(600))")
        }
        return try parse(text)
    }

    /// Reads what the script's `done` wrote.
    static func parse(_ text: String) throws -> Result {
        var result = Result()
        var sawErrors = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard let key = parts.first else { continue }
            let value = parts.count > 1 ? String(parts[1]) : ""
            switch key {
            case "ack":
                let pair = value.split(separator: " ")
                guard pair.count == 2, let record = RecordID(String(pair[0])), let version = Int(pair[1])
                else { throw CommandFailure("wrk wrote an acknowledgement that is not one: \(line)") }
                result.written.append(Written(record: record, version: version))
            case "duration_us": result.seconds = (Double(value) ?? 0) / 1e6
            case "p50_us": result.p50Milliseconds = (Double(value) ?? .nan) / 1000
            case "p99_us": result.p99Milliseconds = (Double(value) ?? .nan) / 1000
            case "max_us": result.maxMilliseconds = (Double(value) ?? .nan) / 1000
            case "errors":
                result.errors = Int(Double(value) ?? 1)
                sawErrors = true
            case "first_error": if !value.isEmpty { result.firstError = value }
            default: continue
            }
        }
        guard sawErrors, result.seconds > 0 else {
            throw CommandFailure("wrk's report is incomplete:\n\(text.prefix(600))")
        }
        return result
    }

    /// Spawns `program` (standard output and error to `log`, standard input from /dev/null) and
    /// waits for it without blocking a thread; SIGKILLs it after `within` and fails.
    private static func spawnAndWait(
        _ program: String,
        _ arguments: [String],
        environment: [String: String],
        log: String,
        within: Duration
    ) async throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw CommandFailure("cannot run \(program): \(String(cString: strerror(spawned)))")
        }
        let deadline = ContinuousClock.now + within
        var status: Int32 = 0
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited == -1, errno != EINTR { throw CommandFailure("waiting for \(program) failed: errno \(errno)") }
            if ContinuousClock.now >= deadline || Task.isCancelled {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                throw CommandFailure("\(program) did not end within \(within)")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
