public import HTTPTypes
public import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// How a test reaches an application: straight into its responder (no sockets, for tests that
/// send a hundred thousand requests), or over a real socket to the real server on a free port.
public enum HTTPTestMode: Sendable {
    case inProcess
    case live
}

public struct TestResponse: Sendable {
    public let status: HTTPResponse.Status
    public let headers: HTTPFields
    public let body: ByteBuffer
}

public struct HTTPTestClient: Sendable {
    typealias Send = @Sendable (_ uri: String, _ method: HTTPRequest.Method, _ headers: HTTPFields, _ body: ByteBuffer?) async throws -> TestResponse
    let send: Send
    /// The server's port in `.live` mode.
    public let port: Int?

    public func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> TestResponse {
        try await send(uri, method, headers, body)
    }

    @discardableResult
    public func execute<Value>(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil,
                               _ check: (TestResponse) async throws -> Value) async throws -> Value {
        try await check(try await send(uri, method, headers, body))
    }
}

public struct HTTPTestFailure: Error, CustomStringConvertible {
    public let description: String
}

extension ApplicationProtocol {
    /// Runs `body` with a client for this application; its services run for the duration.
    public func test<Value>(_ mode: HTTPTestMode, _ body: (HTTPTestClient) async throws -> Value) async throws -> Value {
        switch mode {
        case .inProcess: return try await testInProcess(body)
        case .live: return try await testLive(body)
        }
    }

    private func testInProcess<Value>(_ body: (HTTPTestClient) async throws -> Value) async throws -> Value {
        let responder = try await self.responder
        let logger = self.logger
        let client = HTTPTestClient(send: { uri, method, headers, body in
            var headers = headers
            if let body { headers[.contentLength] = String(body.readableBytes) }
            let request = Request(head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: uri, headerFields: headers),
                                  body: RequestBody(buffer: body ?? ByteBuffer()))
            // As the server does: each request's logger carries its id (context.id reads it).
            var requestLogger = logger
            requestLogger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let context = Responder.Context(source: .init(channel: NIOAsyncTestingChannel(), logger: requestLogger))
            // The router turns an HTTPResponseError into its answer itself, as the server would see it.
            let response = try await responder.respond(to: request, context: context)
            let collector = BodyCollector()
            try await response.body.write(collector)
            return TestResponse(status: response.status, headers: response.headers, body: await collector.collected)
        }, port: nil)
        for process in processesRunBeforeServerStart { try await process() }
        guard !services.isEmpty else { return try await body(client) }
        let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        let group = ServiceGroup(configuration: .init(services: services + [StartSignal(continuation: startedContinuation)],
                                                      gracefulShutdownSignals: [], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Shutting down before the group has started would leave its services never run.
            await started.first { _ in true }
            return try await shuttingDown(group) { try await body(client) }
        }
    }

    private func testLive<Value>(_ body: (HTTPTestClient) async throws -> Value) async throws -> Value {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = LiveApplication(base: self, portContinuation: portContinuation)
        let group = ServiceGroup(configuration: .init(services: [application], gracefulShutdownSignals: [], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            guard let port = await ports.first(where: { _ in true }) else {
                await group.triggerGracefulShutdown()
                throw HTTPTestFailure(description: "the server stopped before it listened")
            }
            let client = HTTPTestClient(send: { uri, method, headers, body in
                try await LiveRequest.send(port: port, uri: uri, method: method, headers: headers, body: body)
            }, port: port)
            return try await shuttingDown(group) { try await body(client) }
        }
    }
}

/// `group` shuts down gracefully once `body` is done, whether it returned or threw.
private func shuttingDown<Value>(_ group: ServiceGroup, after body: () async throws -> Value) async throws -> Value {
    do {
        let value = try await body()
        await group.triggerGracefulShutdown()
        return value
    } catch {
        await group.triggerGracefulShutdown()
        throw error
    }
}

private actor BodyCollector: ResponseBodyWriter {
    var collected = ByteBuffer()
    func write(_ buffer: ByteBuffer) async throws { collected.writeImmutableBuffer(buffer) }
    nonisolated func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

private struct StartSignal: Service {
    let continuation: AsyncStream<Void>.Continuation
    func run() async throws {
        continuation.finish()
        try? await gracefulShutdown()
    }
}

/// The application as it is, listening on 127.0.0.1 at a port the kernel picks.
private struct LiveApplication<Base: ApplicationProtocol>: ApplicationProtocol {
    typealias Responder = Base.Responder
    let base: Base
    let portContinuation: AsyncStream<Int>.Continuation

    var responder: Responder { get async throws { try await base.responder } }
    var server: HTTPServerBuilder { base.server }
    var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
    var configuration: ApplicationConfiguration { base.configuration.with(address: .hostname("127.0.0.1", port: 0)) }
    var logger: Logger { base.logger }
    var services: [any Service] { base.services }
    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { base.processesRunBeforeServerStart }

    @Sendable func onServerRunning(_ channel: any Channel) async {
        await base.onServerRunning(channel)
        if let port = channel.localAddress?.port { portContinuation.yield(port) }
        portContinuation.finish()
    }
}

/// One request on its own HTTP/1.1 connection, closed after the answer.
private enum LiveRequest {
    static func send(port: Int, uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method.rawValue), uri: uri)
            head.headers.add(name: "host", value: "127.0.0.1:\(port)")
            head.headers.add(name: "connection", value: "close")
            for field in headers { head.headers.add(name: field.name.rawName, value: field.value) }
            head.headers.replaceOrAdd(name: "content-length", value: String(body?.readableBytes ?? 0))
            try await outbound.write(.head(head))
            if let body, body.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(body))) }
            try await outbound.write(.end(nil))

            var status: HTTPResponse.Status?
            var fields = HTTPFields()
            var collected = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let responseHead):
                    status = HTTPResponse.Status(code: Int(responseHead.status.code), reasonPhrase: responseHead.status.reasonPhrase)
                    for (name, value) in responseHead.headers {
                        if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
                    }
                case .body(var chunk):
                    collected.writeBuffer(&chunk)
                case .end:
                    guard let status else { throw HTTPTestFailure(description: "an answer without a status line") }
                    return TestResponse(status: status, headers: fields, body: collected)
                }
            }
            throw HTTPTestFailure(description: "the connection closed before the answer ended")
        }
    }
}
