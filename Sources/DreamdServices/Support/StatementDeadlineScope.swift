import DreamdStore
import ServiceLifecycle

/// Runs a service with the daemon's statement deadline (`DREAMD_DB_STATEMENT_TIMEOUT`) in effect for
/// every database call made beneath it, request handlers included.
struct StatementDeadlineScope: Service, CustomStringConvertible {
    let service: any Service
    let deadline: Duration

    func run() async throws {
        try await StatementDeadline.$current.withValue(deadline) { try await service.run() }
    }

    /// The wrapped service's name, as the service group logs it.
    var description: String { "\(service)" }
}
