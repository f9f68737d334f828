import CContext
import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

/// The `--json` document: `{"machine": {...}, "results": [...]}`, the
/// shape outside tools (scripts/compare.sh) read: one row per benchmark and
/// worker count, the median as `value`, and a field per extra.
struct Report {
    let results: [Measurement]
    /// Top-level fields beside "machine" and "results", as (name, JSON value).
    var fields: [(String, String)] = []

    func json() -> String {
        var machine: [(String, String)] = [
            ("cpus", "\(Runtime.defaultWorkerCount)"),
            ("model", quote(cpuModel())),
            ("kernel", quote(kernel())),
            ("arch", quote(arch())),
            ("timestamp", "\(time(nil))"),
        ]
        machine.append(("memoryBytes", "\(physicalMemory())"))
        let m = machine.map { "\(quote($0.0)): \($0.1)" }.joined(separator: ", ")
        let rows = results.map { r in
            "{\"benchmark\": \(quote(r.benchmark)), \"workers\": \(r.workers), \"value\": \(number(r.median)), "
                + "\"unit\": \(quote(r.unit)), \"min\": \(number(r.min)), \"max\": \(number(r.max)), "
                + "\"repeats\": \(r.samples.count), \"peakRSSBytes\": \(r.peakRSSBytes)"
                + r.extras.map { ", \(quote($0.name)): \(number($0.value))" }.joined()
                + (r.bytesPerItem.map { ", \"peakRSSBytesPerItem\": \(number($0)), \"peakItems\": \(r.rssItems!)" } ?? "")
                + (r.rssTargetMet.map { ", \"peakRSSBytesPerItemTarget\": \(r.rssTargetPerItem!), \"peakRSSTargetMet\": \($0)" } ?? "") + "}"
        }
        let top = fields.map { ", \(quote($0.0)): \($0.1)" }.joined()
        return "{\"machine\": {\(m)}\(top), \"results\": [\n  " + rows.joined(separator: ",\n  ") + "\n]}"
    }

    private func number(_ v: Double) -> String {
        v.isFinite ? "\((v * 1000).rounded() / 1000)" : "null"
    }

    private func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if c.value < 0x20 { out += "\\u" + String(c.value, radix: 16).leftPad(4) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }

    private func cpuModel() -> String {
        guard let text = readText("/proc/cpuinfo") else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return String(line[line.index(after: colon)...].drop { $0 == " " })
            }
        }
        return "unknown"
    }

    private func kernel() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private func arch() -> String {
        #if arch(x86_64)
        return "x86_64"
        #elseif arch(arm64)
        return "aarch64"
        #else
        return "other"
        #endif
    }

    private func physicalMemory() -> Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private func readText(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String {
        String(repeating: "0", count: Swift.max(0, n - count)) + self
    }
}
