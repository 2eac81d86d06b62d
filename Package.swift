// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "pyat",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PyAirtableModels", targets: ["PyAirtableModels"]),
        .library(name: "PyAirtableClient", targets: ["PyAirtableClient"]),
        .library(name: "PyAirtableTesting", targets: ["PyAirtableTesting"]),
        .library(name: "ReferenceServerTesting", targets: ["ReferenceServerTesting"]),
        .library(name: "ReferenceServer", targets: ["ReferenceServer"]),
        .library(name: "ClientCache", targets: ["ClientCache"]),
        .library(name: "OfflineQueue", targets: ["OfflineQueue"]),
        .executable(name: "pyat", targets: ["pyat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        .target(
            name: "PyAirtableModels",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PyAirtableClient",
            dependencies: [
                "ClientCache",
                "OfflineQueue",
                "PyAirtableModels",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "WSClient", package: "swift-websocket"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ClientCache",
            dependencies: [
                "PyAirtableModels",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OfflineQueue",
            dependencies: [
                "PyAirtableModels",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ReferenceServer",
            dependencies: [
                "PyAirtableModels",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The OpenAPI document served at GET /openapi.yaml, compiled into the binary as
            // `PackageResources.openapi_yaml` (no bundle to find at run time).
            resources: [.embedInCode("Resources/openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PyAirtableTesting",
            dependencies: [
                "PyAirtableClient",
                "PyAirtableModels",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        // The helpers that run a real server: the reference server on an ephemeral port, one that
        // restarts on the same data, and a webhook receiver. Kept apart from PyAirtableTesting so an
        // SDK user who only mocks a transport does not link Hummingbird, GRDB and jwt-kit.
        .target(
            name: "ReferenceServerTesting",
            dependencies: [
                "PyAirtableClient",
                "PyAirtableModels",
                "ReferenceServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "pyat",
            dependencies: [
                "ClientCache",
                "PyAirtableClient",
                "ReferenceServer",
                "ReferenceServerTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "pyat-quickstart",
            dependencies: ["PyAirtableClient"],
            path: "Examples/QuickStart",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PyAirtableModelsTests",
            dependencies: [
                "PyAirtableModels",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the test targets share that is not for users of PyAirtableTesting: child processes owned
        // by a test, and the gate that runs heavy tests one at a time.
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PyAirtableClientTests",
            dependencies: [
                "PyAirtableClient",
                "PyAirtableTesting",
                "ReferenceServer",
                "ReferenceServerTesting",
                "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReferenceServerTests",
            dependencies: [
                "PyAirtableTesting",
                "ReferenceServer",
                "ReferenceServerTesting",
                "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "WSClient", package: "swift-websocket"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ClientCacheTests",
            dependencies: ["ClientCache", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OfflineQueueTests",
            dependencies: [
                "OfflineQueue",
                "PyAirtableModels",
                "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PyAirtableTestingTests",
            dependencies: ["PyAirtableTesting", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReferenceServerTestingTests",
            dependencies: ["PyAirtableClient", "ReferenceServerTesting", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "pyatTests",
            dependencies: ["pyat", "pyat-quickstart", "ReferenceServer", "ReferenceServerTesting", "TestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
