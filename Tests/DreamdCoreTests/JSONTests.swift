import DreamdCore
import Foundation
import Testing

@Suite("JSON and dates")
struct JSONTests {
    @Test("ISO-8601 with and without zone and fraction")
    func parsesDates() throws {
        let utc = try #require(DreamdJSON.parseDate("2026-11-23T13:23:30Z"))
        #expect(utc.timeIntervalSince1970 == 1_795_440_210)
        #expect(DreamdJSON.parseDate("2026-11-23T13:23:30") == utc)  // dreamlook's style: no zone means UTC
        #expect(DreamdJSON.parseDate("2026-11-23T14:23:30+01:00") == utc)
        let fractional = try #require(DreamdJSON.parseDate("2026-11-23T13:23:30.250000"))
        #expect(abs(fractional.timeIntervalSince1970 - 1_795_440_210.25) < 1e-6)
        #expect(DreamdJSON.parseDate("2026-13-01T00:00:00Z") == nil)
        #expect(DreamdJSON.parseDate("yesterday") == nil)
        #expect(DreamdJSON.parseDate("2026-11-23T13:23:30Zjunk") == nil)
    }

    @Test("dates round-trip at microsecond precision")
    func roundTrip() throws {
        let date = Date(timeIntervalSince1970: 1_795_440_210.123456)
        let text = DreamdJSON.formatDate(date)
        #expect(text == "2026-11-23T13:23:30.123456Z")
        let back = try #require(DreamdJSON.parseDate(text))
        #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 1e-6)
        #expect(DreamdJSON.formatDate(Date(timeIntervalSince1970: -86_400)) == "1969-12-31T00:00:00.000000Z")
    }

    @Test("JSON values keep their shape")
    func jsonValues() throws {
        let text = #"{"a": [1, 2.5, "x", true, null], "b": {"c": -3}}"#
        let value = try DreamdJSON.decode(JSONValue.self, from: text)
        #expect(value["a"]?.arrayValue?.count == 5)
        #expect(value["b"]?["c"]?.intValue == -3)
        #expect(try DreamdJSON.string(value) == #"{"a":[1,2.5,"x",true,null],"b":{"c":-3}}"#)
    }

    @Test("params reader names the bad field")
    func paramsReader() throws {
        let reader = try ParamsReader(["n": 2.5, "s": 3, "ok": 7])
        #expect(throws: ValidationError(field: "params.n", message: "must be an integer, got a fraction")) { try reader.requiredInt("n", in: 0...10) }
        #expect(throws: ValidationError(field: "params.s", message: "must be a string, got number")) { try reader.requiredString("s") }
        #expect(throws: ValidationError(field: "params.ok", message: "must be between 0 and 5, got 7")) { try reader.requiredInt("ok", in: 0...5) }
        #expect(throws: ValidationError(field: "params.missing", message: "is required")) { try reader.requiredString("missing") }
        #expect(throws: ValidationError(field: "params", message: "must be an object, got array")) { try ParamsReader([1, 2]) }
    }
}

@Suite("JSON text reader and writer")
struct JSONTextTests {
    @Test("parses every JSON type, escapes and surrogate pairs; writes sorted compact text")
    func roundTrip() throws {
        let text = #"  {"b": [1, -2.5, 1e3, true, false, null], "a": "q\"\\\/\n\t\u00e9\ud83d\ude00", "c": {}} "#
        let value = try JSONValue.parse(text)
        #expect(value["a"]?.stringValue == "q\"\\/\n\té😀")
        #expect(value["b"] == [1, -2.5, 1000, true, false, .null])
        #expect(value.jsonText == #"{"a":"q\"\\/\n\té😀","b":[1,-2.5,1000,true,false,null],"c":{}}"#)
        #expect(try JSONValue.parse(value.jsonText) == value)
        // The same value as the Codable path reads it.
        #expect(try DreamdJSON.decode(JSONValue.self, from: text) == value)
    }

    @Test("refuses what is not JSON", arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"\\x\"", "\"a", "{} x", "\"\\ud800\""])
    func invalid(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(text) }
    }
}
