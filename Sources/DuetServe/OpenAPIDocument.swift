import DuetCore
import DuetSimilarity

/// The OpenAPI 3.1 description of Serve's routes, served at /openapi.json. It is built from the
/// running server's settings, so the limits it states (body size, batch size, whether a key is
/// needed) are the ones enforced. `scripts/api-fuzz.sh` fuzzes the live server against it with
/// Schemathesis, and a test checks every route in `ServeRoutes.all` is described here.
enum OpenAPIDocument {
    static func json(_ settings: ServeSettings) -> String {
        // What `Identifier.problem` accepts: 1–256 Unicode scalars, none of them a control character.
        let identifier = #"{"type": "string", "minLength": 1, "maxLength": \#(Identifier.maxLength), "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}"#
        // Up to maxExcludedItems comma-separated entries of at most 256 characters; empty ones are skipped.
        // A string, not a form-style array: Schemathesis's type mutations of array query parameters
        // serialize to valid lists.
        let entry = #"[^,\\u0000-\\u001f\\u007f-\\u009f]{0,\#(Identifier.maxLength)}"#
        let excludePattern = "^\(entry)(,\(entry)){0,\(ServeSettings.maxExcludedItems - 1)}$"
        let count = #"{"name": "n", "in": "query", "description": "How many items", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}}"#
        // One filter per parameter; repeat `filter` for more (all must hold). A string, like `exclude`.
        let filter = #"{"name": "filter", "in": "query", "description": "A catalogue condition, key=value or key!=value (genre, artist, or an attribute such as explicit); repeat for up to \#(ItemPredicate.maximumCount), all must hold", "schema": {"type": "string", "pattern": "\#(ItemPredicate.pattern)"}}"#
        let exclude = #"{"name": "exclude", "in": "query", "description": "Item ids to leave out, comma-separated; at most \#(ServeSettings.maxExcludedItems) entries", "schema": {"type": "string", "pattern": "\#(excludePattern)"}}"#
        let access = settings.access
        let security = access.isOpen ? "[]" : #"[{"bearer": []}, {"apiKeyHeader": []}]"#
        // With keys, every /v1 route may refuse a key: unknown (401), lacking the role (403), or over its rate (429).
        var guarded = access.isOpen ? "" : ##""401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"},"##
        if access.keys.contains(where: { $0.rate != nil }) { guarded += ##" "429": {"$ref": "#/components/responses/RateLimited"},"## }
        let metricsSecurity = access.protectMetrics ? #""security": [{"bearer": []}, {"apiKeyHeader": []}],"# : ""
        let metricsGuarded = access.protectMetrics ? guarded : ""
        let maxSeconds = Double(TimestampParser.validRange.upperBound) / 1_000
        return #"""
        {
          "openapi": "3.1.0",
          "info": {"title": "Duet Serve", "version": "1.0.0",
                   "description": "Personalized recommendations and similar items from immutable, checksummed model bundles. Every error is JSON naming the problem; every 503 carries Retry-After. The request line and headers together may hold up to \#(ServeSettings.maxRequestHeadBytes) bytes."},
          "paths": {
            "/v1/users/{user}/recommendations": {
              "get": {
                "operationId": "getRecommendations",
                "summary": "Top-N recommendations for a user; users the bundle does not know get the popularity list",
                "security": \#(security),
                "parameters": [
                  {"name": "user", "in": "path", "required": true, "schema": \#(identifier)},
                  \#(count),
                  \#(exclude),
                  {"name": "context", "in": "query", "description": "Free-form label logged with the exposure",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}},
                  {"name": "explain", "in": "query", "description": "Give each item a 'because': the item from the user's history most similar to it, under the answering bundle's own similarity",
                   "schema": {"type": "string", "enum": ["true", "false"]}},
                  {"name": "explainIndex", "in": "query", "description": "Explain with this published similarity index instead (implies explain and wins over explain=false; 404 when no such index is published)",
                   "schema": {"type": "string", "maxLength": 100, "pattern": "^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*){0,3}$"}}
                ],
                "responses": {
                  "200": {"description": "Recommendations", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recommendations"}}}},
                  "400": {"$ref": "#/components/responses/Error"},
                  "404": {"$ref": "#/components/responses/Error"},
                  \#(guarded)
                  "503": {"$ref": "#/components/responses/Unavailable"}
                }
              }
            },
            "/v1/items/{item}/similar": {
              "get": {
                "operationId": "getSimilarItems",
                "summary": "Items similar to an item, from a named index of the production bundle",
                "security": \#(security),
                "parameters": [
                  {"name": "item", "in": "path", "required": true, "schema": \#(identifier)},
                  \#(count),
                  {"name": "index", "in": "query", "description": "Index name; 404 names the ones the bundle has", "schema": \#(identifier)},
                  \#(filter), \#(exclude)
                ],
                "responses": {
                  "200": {"description": "Similar items", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SimilarItems"}}}},
                  "400": {"$ref": "#/components/responses/Error"},
                  \#(guarded)
                  "404": {"$ref": "#/components/responses/Error"},
                  "503": {"$ref": "#/components/responses/Unavailable"}
                }
              }
            },
            "/v1/similar/{index}/items/{item}": {
              "get": {
                "operationId": "getSimilarItemsFromIndex",
                "summary": "Items similar to an item, from a similarity index published under its own name",
                "description": "The answer names the artefact and the name's generation. A name's '/' may be written as it is or as %2F. An index read in after it went live whose bytes fail their checksum answers 503 and is withdrawn.",
                "security": \#(security),
                "parameters": [
                  {"name": "index", "in": "path", "required": true, "description": "A published index name, e.g. tracks/similar",
                   "schema": {"type": "string", "maxLength": 100, "pattern": "^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*){0,3}$"}},
                  {"name": "item", "in": "path", "required": true, "schema": \#(identifier)},
                  \#(count), \#(filter), \#(exclude)
                ],
                "responses": {
                  "200": {"description": "Similar items", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IndexSimilarItems"}}}},
                  "400": {"$ref": "#/components/responses/Error"},
                  \#(guarded)
                  "404": {"$ref": "#/components/responses/Error"},
                  "503": {"$ref": "#/components/responses/Unavailable"}
                }
              }
            },
            "/v1/events": {
              "post": {
                "operationId": "postEvents",
                "summary": "Ingest a batch of feedback events; 202 only once the whole batch is written and synced",
                "description": "Bodies up to \#(settings.maxBodyBytes) bytes and \#(settings.maxEventsPerBatch) events; every event is validated before any is stored. At most \#(settings.maxIngestInFlight) batches and \#(settings.maxIngestBytes) body bytes (by Content-Length) are taken in at once; past that, and when the store fails or takes longer than the ingest timeout, the answer is 503 with Retry-After and nothing was acknowledged.",
                "security": \#(security),
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                  "description": "Stores the batch once per key: a retry after a 503 or a lost answer stores nothing twice and gets the first receipt (repeated: true)",
                  "schema": {"type": "string", "pattern": "^[!-~]{1,\#(Identifier.maxLength)}$"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                  "oneOf": [{"$ref": "#/components/schemas/EventBatch"},
                            {"type": "object", "required": ["events"], "properties": {"events": {"$ref": "#/components/schemas/EventBatch"}}}]}}}},
                "responses": {
                  "202": {"description": "Stored durably", "content": {"application/json": {"schema": {"type": "object", "required": ["accepted"],
                    "properties": {"accepted": {"type": "integer", "minimum": 1}, "lastSequence": {"type": ["integer", "null"]}, "repeated": {"type": "boolean"}}}}}},
                  "400": {"$ref": "#/components/responses/Error"},
                  \#(guarded)
                  "413": {"$ref": "#/components/responses/Error"},
                  "503": {"$ref": "#/components/responses/Unavailable"}
                }
              }
            },
            "/livez": {"get": {"operationId": "getLiveness", "summary": "The process is alive",
              "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}}}},
            "/readyz": {"get": {"operationId": "getReadiness", "summary": "Ready when a verified production bundle is loaded",
              "responses": {"200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                            "503": {"description": "No production bundle is loaded", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}}}},
            "/metrics": {"get": {"operationId": "getMetrics", "summary": "Prometheus metrics", \#(metricsSecurity)
              "responses": {\#(metricsGuarded) "200": {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"operationId": "getOpenAPI", "summary": "This document",
              "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
          },
          "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "responses": {
              "RateLimited": {"description": "The key's rate limit is spent",
                "headers": {"Retry-After": {"description": "Seconds until the key may ask again", "required": true, "schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
              "Error": {"description": "A JSON error naming the problem",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
              "Unavailable": {"description": "No production bundle yet, ingest overloaded, or the event store failed or did not answer in time; nothing was stored",
                "headers": {"Retry-After": {"description": "Seconds to wait before retrying", "required": true, "schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
              "Error": {"type": "object", "required": ["error", "status"], "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
              "Readiness": {"type": "object", "required": ["ready", "generation", "registryVersion"], "properties": {
                "ready": {"type": "boolean"}, "bundle": {"type": "string"}, "generation": {"type": "integer"},
                "registryVersion": {"type": "integer"}, "activateAt": {"type": "integer"}, "activatedAt": {"type": "integer"},
                "lateByMs": {"type": "integer"}, "pendingVersion": {"type": "integer"}, "pendingActivateAt": {"type": "integer"},
                "reason": {"type": "string"}}},
              "Item": {"type": "object", "required": ["id", "score"], "properties": {
                "id": {"type": "string"}, "score": {"type": "number"}, "title": {"type": "string"}, "artist": {"type": "string"},
                "because": {"type": "object", "required": ["id", "similarity"], "description": "With explain: the history item most similar to this one",
                  "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "similarity": {"type": "number"}}}}},
              "Arm": {"type": "object", "properties": {
                "experimentId": {"type": "string"}, "phase": {"type": "integer"}, "assigned": {"type": "string"},
                "served": {"type": "string"}, "fallbackReason": {"type": "string"}}},
              "Recommendations": {"type": "object", "required": ["user", "requestId", "bundle", "items"], "properties": {
                "user": {"type": "string"}, "requestId": {"type": "string"}, "bundle": {"type": "string"},
                "generation": {"type": "integer"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Arm"}},
                "fallback": {"type": "string"}, "index": {"type": "string"},
                "explanation": {"type": "object", "required": ["index"], "description": "With explain: the similarity that chose each item's because",
                  "properties": {"index": {"type": "string"}, "artefact": {"type": "string"}, "generation": {"type": "integer"}}}}},
              "SimilarItems": {"type": "object", "required": ["item", "bundle", "generation", "index", "items"], "properties": {
                "item": {"type": "string"}, "bundle": {"type": "string"}, "generation": {"type": "integer"},
                "index": {"type": "string"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
              "IndexSimilarItems": {"type": "object", "required": ["item", "index", "artefact", "generation", "filters", "items"], "properties": {
                "item": {"type": "string"}, "index": {"type": "string"}, "artefact": {"type": "string"}, "generation": {"type": "integer"},
                "filters": {"type": "array", "items": {"type": "string"}}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
              "EventBatch": {"type": "array", "minItems": 1, "maxItems": \#(settings.maxEventsPerBatch), "items": {"$ref": "#/components/schemas/FeedbackEvent"}},
              "FeedbackEvent": {"type": "object", "required": ["user", "item", "timestamp"], "properties": {
                "user": \#(identifier), "item": \#(identifier),
                "kind": {"description": "Absent or null means play", "anyOf": [{"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"}, {"type": "null"}]},
                "weight": {"description": "Absent or null means 1", "anyOf": [{"type": "number", "minimum": 0, "maximum": \#(Double(Float.greatestFiniteMagnitude))}, {"type": "null"}]},
                "timestamp": {"description": "ISO 8601 from 1970 to 9999, or epoch seconds, or epoch milliseconds (numbers from 1e12)",
                  "anyOf": [{"type": "string", "format": "date-time", "pattern": "^(19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2})-"},
                            {"type": "string", "pattern": "^[0-9]{1,11}$"},
                            {"type": "number", "minimum": 0, "maximum": \#(maxSeconds)},
                            {"type": "number", "minimum": 1e12, "maximum": \#(TimestampParser.validRange.upperBound)}]},
                "requestId": {"description": "The recommendation this event answers, if any", "anyOf": [\#(identifier), {"type": "null"}]}}}
            }
          }
        }
        """#
    }
}

/// Serve's routes and their methods, as /openapi.json describes them. A request for one of these
/// paths with another method answers 405 with `Allow`, not 404.
package enum ServeRoutes {
    package static let all: [(path: String, methods: [String])] = [
        ("/v1/users/{user}/recommendations", ["GET"]),
        ("/v1/items/{item}/similar", ["GET"]),
        ("/v1/similar/{index}/items/{item}", ["GET"]),
        ("/v1/events", ["POST"]),
        ("/livez", ["GET"]), ("/readyz", ["GET"]), ("/metrics", ["GET"]), ("/openapi.json", ["GET"]),
    ]

    /// The methods the route matching `path` allows, or nil when no route matches it.
    package static func methods(for path: String) -> [String]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return all.first { route in matches(route.path.split(separator: "/", omittingEmptySubsequences: false)[...], segments[...]) }?.methods
    }

    /// `{index}` spans one to four segments (an index name holds '/'); any other `{…}` exactly one.
    private static func matches(_ pattern: ArraySlice<Substring>, _ segments: ArraySlice<Substring>) -> Bool {
        guard let expected = pattern.first else { return segments.isEmpty }
        if expected == "{index}" {
            return (1...4).contains { span in
                span <= segments.count && !segments.prefix(span).contains(where: \.isEmpty) && matches(pattern.dropFirst(), segments.dropFirst(span))
            }
        }
        guard let actual = segments.first, expected.hasPrefix("{") ? !actual.isEmpty : expected == actual else { return false }
        return matches(pattern.dropFirst(), segments.dropFirst())
    }
}
