/// The OpenAPI 3.1 description of Serve's routes, served at /openapi.json. A test checks that
/// every route the router has is described here.
enum OpenAPIDocument {
    static let json = #"""
    {
      "openapi": "3.1.0",
      "info": {"title": "Duet Serve", "version": "1.0.0",
               "description": "Personalized recommendations and similar items from immutable, checksummed model bundles."},
      "paths": {
        "/v1/users/{user}/recommendations": {
          "get": {
            "summary": "Top-N recommendations for a user",
            "parameters": [
              {"name": "user", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 256}},
              {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}},
              {"name": "exclude", "in": "query", "description": "Comma-separated item ids to leave out", "schema": {"type": "string"}},
              {"name": "context", "in": "query", "description": "Free-form label logged with the exposure", "schema": {"type": "string", "maxLength": 64}}
            ],
            "responses": {
              "200": {"description": "Recommendations", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recommendations"}}}},
              "400": {"$ref": "#/components/responses/Error"},
              "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/v1/items/{item}/similar": {
          "get": {
            "summary": "Items similar to an item, from a named index",
            "parameters": [
              {"name": "item", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 256}},
              {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}},
              {"name": "index", "in": "query", "schema": {"type": "string"}}
            ],
            "responses": {
              "200": {"description": "Similar items", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SimilarItems"}}}},
              "400": {"$ref": "#/components/responses/Error"},
              "404": {"$ref": "#/components/responses/Error"},
              "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/v1/events": {
          "post": {
            "summary": "Ingest a batch of feedback events; 202 only once the batch is durable",
            "security": [{"apiKey": []}, {}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
              "oneOf": [{"type": "array", "items": {"$ref": "#/components/schemas/FeedbackEvent"}},
                        {"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackEvent"}}}}]}}}},
            "responses": {
              "202": {"description": "Stored durably", "content": {"application/json": {"schema": {"type": "object",
                "properties": {"accepted": {"type": "integer"}, "lastSequence": {"type": "integer"}}}}}},
              "400": {"$ref": "#/components/responses/Error"},
              "401": {"$ref": "#/components/responses/Error"},
              "413": {"$ref": "#/components/responses/Error"},
              "503": {"$ref": "#/components/responses/Unavailable"}
            }
          }
        },
        "/livez": {"get": {"summary": "The process is alive", "responses": {"200": {"description": "Alive"}}}},
        "/readyz": {"get": {"summary": "Ready when a verified production bundle is loaded",
                            "responses": {"200": {"description": "Ready"}, "503": {"description": "No production bundle"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
      },
      "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": {"description": "A JSON error naming the problem",
          "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}}}},
          "Unavailable": {"description": "Overloaded, or the event store failed or did not answer in time; nothing was stored",
            "headers": {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}},
            "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}}}}},
        "schemas": {
          "Item": {"type": "object", "required": ["id", "score"], "properties": {
            "id": {"type": "string"}, "score": {"type": "number"}, "title": {"type": "string"}, "artist": {"type": "string"}}},
          "Arm": {"type": "object", "properties": {
            "experimentId": {"type": "string"}, "phase": {"type": "integer"}, "assigned": {"type": "string"},
            "served": {"type": "string"}, "fallbackReason": {"type": "string"}}},
          "Recommendations": {"type": "object", "required": ["user", "requestId", "bundle", "items"], "properties": {
            "user": {"type": "string"}, "requestId": {"type": "string"}, "bundle": {"type": "string"},
            "generation": {"type": "integer"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
            "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Arm"}},
            "fallback": {"type": "string"}, "index": {"type": "string"}}},
          "SimilarItems": {"type": "object", "properties": {
            "item": {"type": "string"}, "bundle": {"type": "string"}, "generation": {"type": "integer"},
            "index": {"type": "string"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
          "FeedbackEvent": {"type": "object", "required": ["user", "item", "timestamp"], "properties": {
            "user": {"type": "string"}, "item": {"type": "string"},
            "kind": {"type": "string", "default": "play", "pattern": "^[a-z0-9_-]{1,32}$"},
            "weight": {"type": "number", "minimum": 0, "default": 1},
            "timestamp": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
            "requestId": {"type": "string"}}}
        }
      }
    }
    """#
}
