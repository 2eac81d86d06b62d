import Crypto
import Foundation
import Hummingbird
import PyAirtableModels

/// Airtable's meta API under `/v0/meta`: who the token belongs to, the bases it can see, and a base's
/// tables with their fields (with each type's `options`) and views — in the JSON pyairtable's
/// `Api.whoami()`, `Api.bases()` and `Base.schema()` parse. The ids are the same as under `/api/v1`.
struct AirtableMetaController {
    let store: any AccountRepository & WorkspaceRepository & SchemaRepository

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("meta/whoami", use: whoami)
        group.get("meta/bases", use: bases)
        group.get("meta/bases/{id}/tables", use: tables)
        group.get("meta/bases/{id}", use: collaborators)
    }

    @Sendable func whoami(_ request: Request, context: AppRequestContext) async throws -> Response {
        let userID = try context.requireUser()
        guard let user = try await store.user(id: userID) else {
            throw ServerError.unauthorized("the token's user no longer exists")
        }
        return try AirtableJSON.response(Whoami(id: user.id.rawValue, email: user.email))
    }

    /// Every base of every workspace the caller belongs to, with the caller's permission level; one page
    /// (Airtable pages at 1,000, and a caller here sees far fewer).
    @Sendable func bases(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        var bases: [BaseInfo] = []
        for workspace in try await store.workspaces(user: user) {
            for base in try await store.bases(workspace: workspace.id, user: user) {
                bases.append(
                    BaseInfo(
                        id: base.id.rawValue,
                        name: base.name,
                        permissionLevel: Self.permissionLevel(of: workspace.role)
                    )
                )
            }
        }
        return try AirtableJSON.response(BaseList(bases: bases))
    }

    /// A base's tables with fields and views; `include=visibleFieldIds` adds each grid view's visible
    /// fields (all of them when the view names none).
    @Sendable func tables(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        guard let base = BaseID(context.parameters.get("id") ?? "") else {
            throw AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
        }
        let tables: [PyAirtableModels.Table]
        do {
            tables = try await store.tables(base: base, user: user)
        } catch let error as StorageError where error.isNotFoundOrForbidden {
            throw AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
        }
        let includes = Set(request.uri.queryParameters.getAll("include").map { String($0) })
        let withVisible = includes.contains("visibleFieldIds")
        return try AirtableJSON.response(
            TableList(tables: tables.map { Self.schema(of: $0, withVisibleFieldIDs: withVisible) })
        )
    }

    /// A base with the caller's permission level (`Base.collaborators()` in pyairtable). With
    /// `include=collaborators`, the workspace's members as workspace collaborators (a base has no
    /// members of its own here); `include=inviteLinks` and `include=interfaces` add Airtable's empty
    /// lists (there are no invite links or interfaces). `grantedByUserId` is the workspace's first
    /// owner: memberships do not record who added them.
    @Sendable func collaborators(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let hidden = AirtableErrors.modelNotFound("no such base, or it is not shared with this token")
        guard let baseID = BaseID(context.parameters.get("id") ?? "") else { throw hidden }
        let base: Base
        let workspace: Workspace
        let members: [Member]
        do {
            base = try await store.base(id: baseID, user: user)
            workspace = try await store.workspace(id: base.workspaceID, user: user)
            members = try await store.members(workspace: base.workspaceID, user: user)
        } catch let error as StorageError where error.isNotFoundOrForbidden {
            throw hidden
        }
        let includes = Set(request.uri.queryParameters.getAll("include").map { String($0) })
        let owner = members.first { $0.role == .owner }?.userID.rawValue ?? ""
        var answer = BaseCollaborators(
            id: base.id.rawValue,
            name: base.name,
            createdTime: Timestamp.format(base.createdAt),
            permissionLevel: Self.permissionLevel(of: workspace.role),
            workspaceId: base.workspaceID.rawValue
        )
        if includes.contains("collaborators") {
            answer.individualCollaborators = .init(
                baseCollaborators: [],
                workspaceCollaborators: members.map {
                    Collaborator(
                        userId: $0.userID.rawValue,
                        email: $0.email,
                        permissionLevel: Self.permissionLevel(of: $0.role),
                        createdTime: Timestamp.format($0.addedAt),
                        grantedByUserId: owner
                    )
                }
            )
            answer.groupCollaborators = .init(baseCollaborators: [], workspaceCollaborators: [])
        }
        if includes.contains("inviteLinks") {
            answer.inviteLinks = .init(baseInviteLinks: [], workspaceInviteLinks: [])
        }
        if includes.contains("interfaces") { answer.interfaces = [:] }
        return try AirtableJSON.response(answer)
    }

    struct Collaborator: Encodable {
        var userId: String
        var email: String
        var permissionLevel: String
        var createdTime: String
        var grantedByUserId: String
    }

    struct CollaboratorLists<Item: Encodable>: Encodable {
        var baseCollaborators: [Item]
        var workspaceCollaborators: [Item]
    }

    struct InviteLinks: Encodable {
        var baseInviteLinks: [String]
        var workspaceInviteLinks: [String]
    }

    struct BaseCollaborators: Encodable {
        var id: String
        var name: String
        var createdTime: String
        var permissionLevel: String
        var workspaceId: String
        var individualCollaborators: CollaboratorLists<Collaborator>?
        var groupCollaborators: CollaboratorLists<Collaborator>?
        var inviteLinks: InviteLinks?
        var interfaces: [String: String]?
    }

    /// Airtable's permission level for a workspace role.
    static func permissionLevel(of role: Role) -> String {
        switch role {
        case .owner, .creator: "create"
        case .editor: "edit"
        case .commenter: "comment"
        case .viewer: "read"
        }
    }

    static func schema(of table: PyAirtableModels.Table, withVisibleFieldIDs: Bool) -> TableSchemaJSON {
        TableSchemaJSON(
            id: table.id.rawValue,
            name: table.name,
            description: table.description,
            primaryFieldId: table.primaryFieldID.rawValue,
            fields: table.fields.map(fieldSchema),
            views: table.views.map { view in
                ViewSchemaJSON(
                    id: view.id.rawValue,
                    name: view.name,
                    type: view.type,
                    visibleFieldIds: withVisibleFieldIDs
                        ? Self.visibleFieldIDs(of: view, in: table) : nil
                )
            }
        )
    }

    /// The ids of a view's visible fields, in the table's order.
    static func visibleFieldIDs(of view: View, in table: PyAirtableModels.Table) -> [String] {
        guard let names = view.fields else { return table.fields.map(\.id.rawValue) }
        let visible = Set(names)
        return table.fields.filter { visible.contains($0.name) }.map(\.id.rawValue)
    }

    static func fieldSchema(_ field: Field) -> FieldSchemaJSON {
        FieldSchemaJSON(
            id: field.id.rawValue,
            name: field.name,
            type: field.type.rawValue,
            description: field.description,
            options: options(of: field)
        )
    }

    /// Each type's `options` as Airtable gives them; pyairtable needs them to parse the field's
    /// typed schema (without them it falls back to an untyped one).
    static func options(of field: Field) -> JSONValue? {
        switch field.type {
        case .number:
            return .object(["precision": .number(Double(field.options?.precision ?? 0))])
        case .checkbox:
            return .object(["color": .string("greenBright"), "icon": .string("check")])
        case .singleSelect, .multipleSelects:
            let choices = (field.options?.choices ?? []).map { choice -> JSONValue in
                var object: [String: JSONValue] = [
                    "id": .string(choiceID(field: field.id, name: choice.name)),
                    "name": .string(choice.name),
                ]
                if let color = choice.color { object["color"] = .string(color) }
                return .object(object)
            }
            return .object(["choices": .array(choices)])
        case .date:
            return .object(["dateFormat": .object(["name": .string("iso"), "format": .string("YYYY-MM-DD")])])
        case .dateTime:
            return .object([
                "timeZone": .string("utc"),
                "dateFormat": .object(["name": .string("iso"), "format": .string("YYYY-MM-DD")]),
                "timeFormat": .object(["name": .string("24hour"), "format": .string("HH:mm")]),
            ])
        case .multipleAttachments:
            return .object(["isReversed": .bool(false)])
        case .multipleRecordLinks:
            var object: [String: JSONValue] = [
                "isReversed": .bool(false), "prefersSingleRecordLink": .bool(false),
            ]
            if let linked = field.options?.linkedTableID { object["linkedTableId"] = .string(linked.rawValue) }
            return .object(object)
        default:
            return nil
        }
    }

    /// A select choice's id, `sel` and 14 letters or digits: choices are stored by name, so the id is
    /// derived from the field and the name, and stays the same while the choice keeps its name.
    static func choiceID(field: FieldID, name: String) -> String {
        let digest = SHA256.hash(data: Data("\(field.rawValue)\u{0}\(name)".utf8))
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        return "sel" + String(digest.prefix(14).map { alphabet[Int($0) % alphabet.count] })
    }

    struct Whoami: Encodable {
        var id: String
        var email: String
    }

    struct BaseInfo: Encodable {
        var id: String
        var name: String
        var permissionLevel: String
    }

    struct BaseList: Encodable {
        var bases: [BaseInfo]
    }

    struct TableList: Encodable {
        var tables: [TableSchemaJSON]
    }

    struct TableSchemaJSON: Encodable {
        var id: String
        var name: String
        var description: String?
        var primaryFieldId: String
        var fields: [FieldSchemaJSON]
        var views: [ViewSchemaJSON]
    }

    struct FieldSchemaJSON: Encodable {
        var id: String
        var name: String
        var type: String
        var description: String?
        var options: JSONValue?
    }

    struct ViewSchemaJSON: Encodable {
        var id: String
        var name: String
        var type: String
        var visibleFieldIds: [String]?
    }
}

/// JSON as Airtable writes it: camelCase keys as declared, absent optionals left out.
enum AirtableJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value)))
        )
    }

    /// A 200 answer of JSON already written.
    static func response(bytes: [UInt8]) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}

extension StorageError {
    /// Whether the error says the resource does not exist or is not the caller's to see.
    var isNotFoundOrForbidden: Bool {
        switch self {
        case .notFound, .forbidden: true
        default: false
        }
    }
}
