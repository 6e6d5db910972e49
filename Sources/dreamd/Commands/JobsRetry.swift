import ArgumentParser

extension Jobs {
    /// `dreamd jobs retry ID`: `POST /v1/jobs/{id}/retry`.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a failed or cancelled job again (a new round of attempts; needs a submit key).")
        @OptionGroup var api: APIOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            try printJSON(try await api.call(.POST, "/v1/jobs/\(id)/retry"))
        }
    }
}
