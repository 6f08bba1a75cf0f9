import Glibc
import LogStorage

/// A fresh directory under /tmp, removed with everything in it when the test ends.
final class TemporaryDirectory {
    let path: String

    init(prefix: String) {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { buffer in
            guard let made = mkdtemp(buffer.baseAddress!) else { preconditionFailure("mkdtemp failed (errno \(errno))") }
            return String(cString: made)
        }
    }

    func child(_ name: String) -> String { joinPath(path, name) }

    deinit { removeTree(path) }

    private func removeTree(_ path: String) {
        if unlink(path) == 0 { return }
        guard let directory = opendir(path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { removeTree(joinPath(path, name)) }
        }
        closedir(directory)
        rmdir(path)
    }
}
