//! Every catalogue language behaves like itself in the sandbox: hello world, stdin, arguments, exit codes, runtime
//! errors, compile errors, unicode, programs of two files, and the time and memory limits.
//!
//! Each language is a table of snippets ([`Lang`]); `language_tests!` turns every (language, case) pair into its
//! own test, named `<language>::<case>` (e.g. `go::memory_bomb_is_memory_limit`), so `cargo test go::` runs one
//! language and `cargo test memory_bomb` one case for all of them.
//!
//! A language whose runtime is not installed is skipped with a message, except under `CI` (or with
//! `RUNBOX_REQUIRE_RUNTIMES=1`), where it fails.

use crate::common;
use common::*;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use runbox_lang::{discovery, Availability, Catalogue};

// ---------------------------------------------------------------------------------------------------------------
// What every snippet of a kind must print.

const HELLO_OUT: &str = "Hello, World!\n";
/// Given on stdin to the `stdin` snippets, which print how many numbers they read and their sum.
const STDIN_IN: &str = "3\n4\n5\n";
const STDIN_OUT: &str = "3 12\n";
/// Passed to the `args` snippets, which print how many they got and the arguments joined by `|`. The space, the
/// empty argument, the non-ASCII one and the one that looks like a flag must all arrive untouched.
const ARGS: &[&str] = &["a b", "", "ç", "--flag"];
const ARGS_OUT: &str = "4 a b||ç|--flag\n";
/// The `exit` snippets print this and then exit with code 3.
const EXIT_OUT: &str = "bye\n";
const UNICODE_OUT: &str = "héllo ✓ 你好 🎉\n";
/// The entry file of a two-file program calls `greet("world")` from its second file.
const TWO_FILES_OUT: &str = "hello, world from helper\n";
/// Time limit of the infinite loops.
const LOOP_TIMEOUT_MS: &str = "1500";
/// Memory limit of the memory bombs, far below what they try to allocate.
const BOMB_MEMORY_MB: &str = "128";

/// How a snippet's runtime error must end.
struct RuntimeError {
    code: &'static str,
    /// `ExitedNonzero` with `exit_code`, or `Killed` with `signal` (an uncaught C++ exception, a failed C assertion).
    status: ExecStatus,
    exit_code: Option<i32>,
    signal: Option<i32>,
    /// What the program printed before failing.
    stdout: &'static str,
    /// The error message, somewhere in stderr.
    stderr_contains: &'static str,
}

/// One language: its id, an alias to select it by, and a snippet for each case.
struct Lang {
    id: &'static str,
    /// Used instead of the id in `reads_stdin`, so every language is also selected by an alias once.
    alias: &'static str,
    /// Prints [`HELLO_OUT`]; run with `--code`.
    hello: &'static str,
    /// Reads [`STDIN_IN`] and prints [`STDIN_OUT`].
    stdin: &'static str,
    /// Prints [`ARGS_OUT`] when given [`ARGS`].
    args: &'static str,
    /// Prints [`EXIT_OUT`] and exits with code 3.
    exit: &'static str,
    runtime_error: RuntimeError,
    /// For compiled languages: code that does not compile, and part of the compiler's message.
    compile_error: Option<(&'static str, &'static str)>,
    /// An entry file (its name says the language: no `--lang`) printing [`UNICODE_OUT`].
    unicode: (&'static str, &'static str),
    /// Entry file first; prints [`TWO_FILES_OUT`].
    two_files: &'static [(&'static str, &'static str)],
    /// Never ends, burning CPU.
    cpu_loop: &'static str,
    /// Allocates, and touches, far more than [`BOMB_MEMORY_MB`].
    memory_bomb: &'static str,
}

// ---------------------------------------------------------------------------------------------------------------
// The languages.

const PYTHON: Lang = Lang {
    id: "python",
    alias: "py",
    hello: "print('Hello, World!')\n",
    stdin: "import sys\nnums = [int(line) for line in sys.stdin]\nprint(len(nums), sum(nums))\n",
    args: "import sys\nargs = sys.argv[1:]\nprint(len(args), '|'.join(args))\n",
    exit: "print('bye')\nraise SystemExit(3)\n",
    runtime_error: RuntimeError {
        code: "def fail():\n    raise ValueError('boom-42')\n\nprint('before')\nfail()\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "ValueError: boom-42",
    },
    compile_error: None,
    unicode: ("main.py", "print('héllo ✓ 你好 🎉')\n"),
    // A namespace package in a subdirectory: the relative path must survive.
    two_files: &[
        ("main.py", "from util.helper import greet\n\nprint(greet('world'))\n"),
        (
            "util/helper.py",
            "def greet(name):\n    return f'hello, {name} from helper'\n",
        ),
    ],
    cpu_loop: "while True:\n    pass\n",
    memory_bomb: "keep = []\nwhile True:\n    keep.append(bytearray(b'x' * (8 << 20)))\n",
};

const JAVASCRIPT: Lang = Lang {
    id: "javascript",
    alias: "node",
    hello: "console.log('Hello, World!');\n",
    stdin: "const nums = require('fs').readFileSync(0, 'utf8').split('\\n').filter(Boolean).map(Number);\n\
            console.log(nums.length, nums.reduce((a, b) => a + b, 0));\n",
    args: "const args = process.argv.slice(2);\nconsole.log(args.length, args.join('|'));\n",
    exit: "console.log('bye');\nprocess.exit(3);\n",
    runtime_error: RuntimeError {
        code: "function fail() {\n  throw new Error('boom-42');\n}\nconsole.log('before');\nfail();\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "Error: boom-42",
    },
    compile_error: None,
    unicode: ("main.js", "console.log('héllo ✓ 你好 🎉');\n"),
    two_files: &[
        (
            "main.js",
            "const { greet } = require('./helper');\nconsole.log(greet('world'));\n",
        ),
        ("helper.js", "exports.greet = (name) => `hello, ${name} from helper`;\n"),
    ],
    cpu_loop: "for (;;) {}\n",
    // Buffers live outside V8's heap, so the cgroup, not V8's heap limit, stops this.
    memory_bomb: "const keep = [];\nfor (;;) keep.push(Buffer.alloc(8 << 20, 1));\n",
};

const TYPESCRIPT: Lang = Lang {
    id: "typescript",
    alias: "ts",
    hello: "const greeting: string = 'Hello, World!';\nconsole.log(greeting);\n",
    stdin: "import * as fs from 'fs';\n\
            const nums: number[] = fs.readFileSync(0, 'utf8').split('\\n').filter(Boolean).map(Number);\n\
            console.log(nums.length, nums.reduce((a: number, b: number) => a + b, 0));\n",
    args: "const args: string[] = process.argv.slice(2);\nconsole.log(args.length, args.join('|'));\n",
    exit: "console.log('bye');\nprocess.exit(3);\n",
    runtime_error: RuntimeError {
        code: "function fail(): never {\n  throw new Error('boom-42');\n}\nconsole.log('before');\nfail();\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "Error: boom-42",
    },
    compile_error: Some((
        "const n: number = 'not a number';\nconsole.log(n);\n",
        "error TS2322: Type 'string' is not assignable to type 'number'",
    )),
    unicode: ("main.ts", "const s: string = 'héllo ✓ 你好 🎉';\nconsole.log(s);\n"),
    two_files: &[
        (
            "main.ts",
            "import { greet } from './helper';\n\nconsole.log(greet('world'));\n",
        ),
        (
            "helper.ts",
            "export function greet(name: string): string {\n  return `hello, ${name} from helper`;\n}\n",
        ),
    ],
    cpu_loop: "for (;;) {}\n",
    memory_bomb: "const keep: Buffer[] = [];\nfor (;;) keep.push(Buffer.alloc(8 << 20, 1));\n",
};

const BASH: Lang = Lang {
    id: "bash",
    alias: "sh",
    hello: "echo 'Hello, World!'\n",
    stdin: "n=0\ns=0\nwhile read -r x; do\n  n=$((n + 1))\n  s=$((s + x))\ndone\necho \"$n $s\"\n",
    args: "IFS='|'\necho \"$# $*\"\n",
    exit: "echo bye\nexit 3\n",
    runtime_error: RuntimeError {
        code: "echo before\nset -u\necho \"$undefined_var\"\necho after\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "undefined_var: unbound variable",
    },
    compile_error: None,
    unicode: ("main.sh", "echo 'héllo ✓ 你好 🎉'\n"),
    two_files: &[
        ("main.sh", "source lib/helper.sh\ngreet world\n"),
        ("lib/helper.sh", "greet() {\n  echo \"hello, $1 from helper\"\n}\n"),
    ],
    cpu_loop: "while :; do :; done\n",
    // Doubles a variable until it no longer fits.
    memory_bomb: "s=xxxxxxxx\nwhile :; do s+=$s; done\n",
};

const C: Lang = Lang {
    id: "c",
    alias: "gcc",
    hello: "#include <stdio.h>\n\nint main(void) {\n    puts(\"Hello, World!\");\n    return 0;\n}\n",
    stdin: "#include <stdio.h>\n\nint main(void) {\n    int x, n = 0;\n    long s = 0;\n\
            while (scanf(\"%d\", &x) == 1) {\n        n++;\n        s += x;\n    }\n\
            printf(\"%d %ld\\n\", n, s);\n    return 0;\n}\n",
    args: "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    printf(\"%d \", argc - 1);\n\
           for (int i = 1; i < argc; i++)\n        printf(\"%s%s\", i > 1 ? \"|\" : \"\", argv[i]);\n\
           putchar('\\n');\n    return 0;\n}\n",
    exit: "#include <stdio.h>\n\nint main(void) {\n    puts(\"bye\");\n    return 3;\n}\n",
    runtime_error: RuntimeError {
        code: "#include <assert.h>\n#include <stdio.h>\n\nint main(int argc, char **argv) {\n    (void)argv;\n\
               puts(\"before\");\n    fflush(stdout);\n    assert(argc == 42);\n    return 0;\n}\n",
        status: ExecStatus::Killed,
        exit_code: None,
        signal: Some(libc::SIGABRT),
        stdout: "before\n",
        stderr_contains: "Assertion `argc == 42' failed",
    },
    compile_error: Some((
        "int main(void) {\n    return undeclared_thing;\n}\n",
        // gcc quotes the name with ‘’ in a UTF-8 locale and '' otherwise.
        "undeclared (first use in this function)",
    )),
    unicode: ("main.c", "#include <stdio.h>\n\nint main(void) {\n    puts(\"héllo ✓ 你好 🎉\");\n    return 0;\n}\n"),
    two_files: &[
        (
            "main.c",
            "#include <stdio.h>\n#include \"include/helper.h\"\n\n\
             int main(void) {\n    char buf[64];\n    greet(buf, sizeof buf, \"world\");\n    puts(buf);\n    return 0;\n}\n",
        ),
        ("include/helper.h", "#include <stddef.h>\n\nvoid greet(char *out, size_t size, const char *name);\n"),
        (
            "helper.c",
            "#include <stdio.h>\n#include \"include/helper.h\"\n\n\
             void greet(char *out, size_t size, const char *name) {\n\
             \x20   snprintf(out, size, \"hello, %s from helper\", name);\n}\n",
        ),
    ],
    cpu_loop: "int main(void) {\n    volatile unsigned long n = 0;\n    for (;;)\n        n++;\n}\n",
    memory_bomb: "#include <stdlib.h>\n#include <string.h>\n\nstatic void *volatile sink;\n\n\
                  int main(void) {\n    for (;;) {\n        char *p = malloc(8 << 20);\n        if (!p)\n\
                  \x20           return 1;\n        memset(p, 1, 8 << 20);\n        sink = p;\n    }\n}\n",
};

const CPP: Lang = Lang {
    id: "cpp",
    alias: "c++",
    hello: "#include <iostream>\n\nint main() {\n    std::cout << \"Hello, World!\" << std::endl;\n}\n",
    stdin: "#include <iostream>\n\nint main() {\n    long x, s = 0;\n    int n = 0;\n\
            while (std::cin >> x) {\n        ++n;\n        s += x;\n    }\n\
            std::cout << n << ' ' << s << '\\n';\n}\n",
    args: "#include <iostream>\n#include <string>\n#include <vector>\n\nint main(int argc, char **argv) {\n\
           std::vector<std::string> args(argv + 1, argv + argc);\n    std::cout << args.size() << ' ';\n\
           for (size_t i = 0; i < args.size(); ++i)\n        std::cout << (i ? \"|\" : \"\") << args[i];\n\
           std::cout << '\\n';\n}\n",
    exit: "#include <iostream>\n\nint main() {\n    std::cout << \"bye\\n\";\n    return 3;\n}\n",
    runtime_error: RuntimeError {
        code: "#include <iostream>\n#include <vector>\n\nint main(int argc, char **) {\n    std::vector<int> v;\n\
               std::cout << \"before\" << std::endl;\n    return v.at(argc + 4);\n}\n",
        status: ExecStatus::Killed,
        exit_code: None,
        signal: Some(libc::SIGABRT),
        stdout: "before\n",
        stderr_contains: "terminate called after throwing an instance of 'std::out_of_range'",
    },
    compile_error: Some((
        "int main() {\n    return undeclared_thing;\n}\n",
        "was not declared in this scope",
    )),
    unicode: (
        "main.cpp",
        "#include <iostream>\n\nint main() {\n    std::cout << \"héllo ✓ 你好 🎉\\n\";\n}\n",
    ),
    two_files: &[
        (
            "main.cpp",
            "#include <iostream>\n#include \"helper.hpp\"\n\n\
             int main() {\n    std::cout << greet(\"world\") << '\\n';\n}\n",
        ),
        (
            "helper.hpp",
            "#pragma once\n#include <string>\n\nstd::string greet(const std::string &name);\n",
        ),
        (
            "helper.cpp",
            "#include \"helper.hpp\"\n\n\
             std::string greet(const std::string &name) {\n    return \"hello, \" + name + \" from helper\";\n}\n",
        ),
    ],
    cpu_loop: "int main() {\n    volatile unsigned long n = 0;\n    for (;;)\n        n = n + 1;\n}\n",
    memory_bomb: "#include <vector>\n\nint main() {\n    std::vector<std::vector<char>> keep;\n\
                  for (;;)\n        keep.emplace_back(8 << 20, 'x');\n}\n",
};

const JAVA: Lang = Lang {
    id: "java",
    // Java has no alias.
    alias: "java",
    hello: "public class Main {\n    public static void main(String[] args) {\n\
            \x20       System.out.println(\"Hello, World!\");\n    }\n}\n",
    stdin: "import java.io.BufferedReader;\nimport java.io.InputStreamReader;\nimport java.util.List;\n\
            import java.util.stream.Collectors;\n\npublic class Main {\n\
            \x20   public static void main(String[] args) throws Exception {\n\
            \x20       BufferedReader in = new BufferedReader(new InputStreamReader(System.in));\n\
            \x20       List<Long> nums = in.lines().map(Long::parseLong).collect(Collectors.toList());\n\
            \x20       long sum = nums.stream().mapToLong(Long::longValue).sum();\n\
            \x20       System.out.println(nums.size() + \" \" + sum);\n    }\n}\n",
    args: "public class Main {\n    public static void main(String[] args) {\n\
           \x20       System.out.println(args.length + \" \" + String.join(\"|\", args));\n    }\n}\n",
    exit: "public class Main {\n    public static void main(String[] args) {\n\
           \x20       System.out.println(\"bye\");\n        System.exit(3);\n    }\n}\n",
    runtime_error: RuntimeError {
        code: "public class Main {\n    public static void main(String[] args) {\n\
               \x20       int[] a = new int[2];\n        System.out.println(\"before\");\n\
               \x20       System.out.println(a[args.length + 5]);\n    }\n}\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "java.lang.ArrayIndexOutOfBoundsException: Index 5 out of bounds for length 2",
    },
    compile_error: Some((
        "public class Main {\n    public static void main(String[] args) {\n        int x = \"text\";\n    }\n}\n",
        "incompatible types: String cannot be converted to int",
    )),
    unicode: (
        "Main.java",
        "public class Main {\n    public static void main(String[] args) {\n\
         \x20       System.out.println(\"héllo ✓ 你好 🎉\");\n    }\n}\n",
    ),
    two_files: &[
        (
            "Main.java",
            "public class Main {\n    public static void main(String[] args) {\n\
             \x20       System.out.println(new Greeter(\"helper\").greet(\"world\"));\n    }\n}\n",
        ),
        (
            "Greeter.java",
            "public class Greeter {\n    private final String from;\n\n\
             \x20   public Greeter(String from) {\n        this.from = from;\n    }\n\n\
             \x20   public String greet(String name) {\n        return \"hello, \" + name + \" from \" + from;\n    }\n}\n",
        ),
    ],
    cpu_loop: "public class Main {\n    public static void main(String[] args) {\n        long n = 0;\n\
               \x20       while (true) {\n            n++;\n        }\n    }\n}\n",
    // The heap may grow to 75% of -XX:MaxRAM=512m, well past the 128 MiB cgroup limit: the cgroup stops it, not an
    // OutOfMemoryError. New arrays are zeroed, so every page is touched.
    memory_bomb: "import java.util.ArrayList;\nimport java.util.List;\n\npublic class Main {\n\
                  \x20   public static void main(String[] args) {\n        List<byte[]> keep = new ArrayList<>();\n\
                  \x20       while (true) {\n            keep.add(new byte[8 << 20]);\n        }\n    }\n}\n",
};

const GO: Lang = Lang {
    id: "go",
    alias: "golang",
    hello: "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"Hello, World!\")\n}\n",
    stdin: "package main\n\nimport (\n\t\"bufio\"\n\t\"fmt\"\n\t\"os\"\n\t\"strconv\"\n)\n\nfunc main() {\n\
            \tn, s := 0, 0\n\tscanner := bufio.NewScanner(os.Stdin)\n\tfor scanner.Scan() {\n\
            \t\tx, err := strconv.Atoi(scanner.Text())\n\t\tif err != nil {\n\t\t\tpanic(err)\n\t\t}\n\
            \t\tn++\n\t\ts += x\n\t}\n\tfmt.Println(n, s)\n}\n",
    args: "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"strings\"\n)\n\nfunc main() {\n\
           \tfmt.Println(len(os.Args)-1, strings.Join(os.Args[1:], \"|\"))\n}\n",
    exit:
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Println(\"bye\")\n\tos.Exit(3)\n}\n",
    runtime_error: RuntimeError {
        code: "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tvar a []int\n\
               \tfmt.Println(\"before\")\n\tfmt.Println(a[len(os.Args)+4])\n}\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(2),
        signal: None,
        stdout: "before\n",
        stderr_contains: "panic: runtime error: index out of range [5] with length 0",
    },
    compile_error: Some((
        "package main\n\nfunc main() {\n\tundefinedThing()\n}\n",
        "undefined: undefinedThing",
    )),
    unicode: (
        "main.go",
        "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"héllo ✓ 你好 🎉\")\n}\n",
    ),
    two_files: &[
        (
            "main.go",
            "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(greet(\"world\"))\n}\n",
        ),
        (
            "helper.go",
            "package main\n\nfunc greet(name string) string {\n\treturn \"hello, \" + name + \" from helper\"\n}\n",
        ),
    ],
    cpu_loop: "package main\n\nfunc main() {\n\tn := 0\n\tfor {\n\t\tn++\n\t}\n}\n",
    memory_bomb: "package main\n\nfunc main() {\n\tvar keep [][]byte\n\tfor {\n\t\tb := make([]byte, 8<<20)\n\
                  \t\tfor i := range b {\n\t\t\tb[i] = 1\n\t\t}\n\t\tkeep = append(keep, b)\n\t}\n}\n",
};

const RUST: Lang = Lang {
    id: "rust",
    alias: "rs",
    hello: "fn main() {\n    println!(\"Hello, World!\");\n}\n",
    stdin: "use std::io::BufRead;\n\nfn main() {\n    let nums: Vec<i64> = std::io::stdin()\n        .lock()\n\
            \x20       .lines()\n        .map(|l| l.unwrap().trim().parse().unwrap())\n        .collect();\n\
            \x20   println!(\"{} {}\", nums.len(), nums.iter().sum::<i64>());\n}\n",
    args: "fn main() {\n    let args: Vec<String> = std::env::args().skip(1).collect();\n\
           \x20   println!(\"{} {}\", args.len(), args.join(\"|\"));\n}\n",
    exit: "fn main() {\n    println!(\"bye\");\n    std::process::exit(3);\n}\n",
    runtime_error: RuntimeError {
        code: "fn main() {\n    let v: Vec<i32> = Vec::new();\n    println!(\"before\");\n\
               \x20   println!(\"{}\", v[std::env::args().count() + 4]);\n}\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(101),
        signal: None,
        stdout: "before\n",
        stderr_contains: "index out of bounds: the len is 0 but the index is 5",
    },
    compile_error: Some(("fn main() {\n    let x: i32 = \"text\";\n}\n", "error[E0308]: mismatched types")),
    unicode: ("main.rs", "fn main() {\n    println!(\"héllo ✓ 你好 🎉\");\n}\n"),
    two_files: &[
        ("main.rs", "mod helper;\n\nfn main() {\n    println!(\"{}\", helper::greet(\"world\"));\n}\n"),
        ("helper.rs", "pub fn greet(name: &str) -> String {\n    format!(\"hello, {name} from helper\")\n}\n"),
    ],
    cpu_loop: "fn main() {\n    let mut n: u64 = 1;\n    loop {\n        n = n.wrapping_mul(6364136223846793005).wrapping_add(1);\n\
               \x20       if n == 0 {\n            println!(\"{n}\");\n        }\n    }\n}\n",
    // Filled with 1, not 0: zeroed memory comes from calloc and would never be touched.
    memory_bomb: "fn main() {\n    let mut keep = Vec::new();\n    loop {\n        keep.push(vec![1u8; 8 << 20]);\n\
                  \x20       eprintln!(\"{} MiB\", keep.len() * 8);\n    }\n}\n",
};

const RUBY: Lang = Lang {
    id: "ruby",
    alias: "rb",
    hello: "puts 'Hello, World!'\n",
    stdin: "nums = $stdin.each_line.map(&:to_i)\nputs \"#{nums.size} #{nums.sum}\"\n",
    args: "puts \"#{ARGV.size} #{ARGV.join('|')}\"\n",
    exit: "puts 'bye'\nexit 3\n",
    runtime_error: RuntimeError {
        code: "def fail\n  raise ArgumentError, 'boom-42'\nend\n\nputs 'before'\nfail\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "boom-42 (ArgumentError)",
    },
    compile_error: None,
    unicode: ("main.rb", "puts 'héllo ✓ 你好 🎉'\n"),
    two_files: &[
        ("main.rb", "require_relative 'helper'\n\nputs greet('world')\n"),
        ("helper.rb", "def greet(name)\n  \"hello, #{name} from helper\"\nend\n"),
    ],
    cpu_loop: "loop {}\n",
    memory_bomb: "keep = []\nloop { keep << 'x' * (8 << 20) }\n",
};

const PHP: Lang = Lang {
    id: "php",
    // PHP has no alias.
    alias: "php",
    hello: "<?php\necho \"Hello, World!\\n\";\n",
    stdin: "<?php\n$nums = array_map('intval', file('php://stdin', FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES));\n\
            echo count($nums), ' ', array_sum($nums), \"\\n\";\n",
    args: "<?php\n$args = array_slice($argv, 1);\necho count($args), ' ', implode('|', $args), \"\\n\";\n",
    exit: "<?php\necho \"bye\\n\";\nexit(3);\n",
    runtime_error: RuntimeError {
        code:
            "<?php\nfunction fail() {\n    throw new RuntimeException('boom-42');\n}\n\necho \"before\\n\";\nfail();\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(255),
        signal: None,
        stdout: "before\n",
        stderr_contains: "Uncaught RuntimeException: boom-42",
    },
    compile_error: None,
    unicode: ("main.php", "<?php\necho \"héllo ✓ 你好 🎉\\n\";\n"),
    two_files: &[
        (
            "main.php",
            "<?php\nrequire __DIR__ . '/helper.php';\n\necho greet('world'), \"\\n\";\n",
        ),
        (
            "helper.php",
            "<?php\nfunction greet(string $name): string {\n    return \"hello, $name from helper\";\n}\n",
        ),
    ],
    cpu_loop: "<?php\nwhile (true) {\n}\n",
    // Without PHP's own memory_limit, so that the sandbox's is the one hit.
    memory_bomb: "<?php\nini_set('memory_limit', '-1');\n$keep = [];\nwhile (true) {\n\
                  \x20   $keep[] = str_repeat('x', 8 << 20);\n}\n",
};

const R: Lang = Lang {
    id: "r",
    alias: "rscript",
    hello: "cat('Hello, World!\\n')\n",
    stdin: "nums <- as.integer(readLines(file('stdin')))\ncat(sprintf('%d %d\\n', length(nums), sum(nums)))\n",
    args: "args <- commandArgs(trailingOnly = TRUE)\ncat(length(args), ' ', paste(args, collapse = '|'), '\\n', sep = '')\n",
    exit: "cat('bye\\n')\nquit(status = 3)\n",
    runtime_error: RuntimeError {
        code: "fail <- function() stop('boom-42')\ncat('before\\n')\nfail()\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "boom-42",
    },
    compile_error: None,
    unicode: ("main.R", "cat('héllo ✓ 你好 🎉\\n')\n"),
    two_files: &[
        ("main.R", "source('helper.R')\ncat(greet('world'), '\\n', sep = '')\n"),
        ("helper.R", "greet <- function(name) paste0('hello, ', name, ' from helper')\n"),
    ],
    cpu_loop: "n <- 0\nrepeat {\n  n <- n + 1\n}\n",
    memory_bomb: "keep <- list()\ni <- 0\nrepeat {\n  i <- i + 1\n  keep[[i]] <- rep(i, 1e6)\n}\n",
};

const PERL: Lang = Lang {
    id: "perl",
    alias: "pl",
    hello: "print \"Hello, World!\\n\";\n",
    stdin: "my ($n, $s) = (0, 0);\nwhile (my $line = <STDIN>) {\n    $n++;\n    $s += $line;\n}\nprint \"$n $s\\n\";\n",
    args: "print scalar(@ARGV), ' ', join('|', @ARGV), \"\\n\";\n",
    exit: "print \"bye\\n\";\nexit 3;\n",
    runtime_error: RuntimeError {
        code: "use strict;\nuse warnings;\n\nprint \"before\\n\";\nmy $zero = 0;\nmy $r = 1 / $zero;\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(255),
        signal: None,
        stdout: "before\n",
        stderr_contains: "Illegal division by zero",
    },
    compile_error: None,
    unicode: ("main.pl", "print \"héllo ✓ 你好 🎉\\n\";\n"),
    // A module, found next to the script.
    two_files: &[
        ("main.pl", "use strict;\nuse warnings;\nuse FindBin;\nuse lib $FindBin::Bin;\nuse Helper qw(greet);\n\nprint greet('world'), \"\\n\";\n"),
        (
            "Helper.pm",
            "package Helper;\nuse strict;\nuse warnings;\nuse Exporter 'import';\nour @EXPORT_OK = qw(greet);\n\n\
             sub greet {\n    my ($name) = @_;\n    return \"hello, $name from helper\";\n}\n\n1;\n",
        ),
    ],
    cpu_loop: "my $n = 0;\n$n++ while 1;\n",
    memory_bomb: "my @keep;\npush @keep, 'x' x (8 << 20) while 1;\n",
};

const LUA: Lang = Lang {
    id: "lua",
    alias: "lua5.4",
    hello: "print('Hello, World!')\n",
    stdin: "local n, s = 0, 0\nfor line in io.lines() do\n  n = n + 1\n  s = s + tonumber(line)\nend\nprint(n .. ' ' .. s)\n",
    args: "print(#arg .. ' ' .. table.concat(arg, '|'))\n",
    exit: "print('bye')\nos.exit(3)\n",
    runtime_error: RuntimeError {
        code: "print('before')\nlocal t = nil\nprint(t.x)\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "attempt to index a nil value (local 't')",
    },
    compile_error: None,
    unicode: ("main.lua", "print('héllo ✓ 你好 🎉')\n"),
    two_files: &[
        ("main.lua", "local helper = require('helper')\n\nprint(helper.greet('world'))\n"),
        ("helper.lua", "local M = {}\n\nfunction M.greet(name)\n  return 'hello, ' .. name .. ' from helper'\nend\n\nreturn M\n"),
    ],
    cpu_loop: "local n = 0\nwhile true do\n  n = n + 1\nend\n",
    // Each string differs in length, so none is shared.
    memory_bomb: "local keep = {}\nwhile true do\n  keep[#keep + 1] = string.rep('x', (8 << 20) + #keep)\nend\n",
};

const SQL: Lang = Lang {
    id: "sql",
    alias: "sqlite",
    hello: "SELECT 'Hello, World!';\n",
    // sqlite3 runs the file with -init and never reads stdin itself; `.import` from a command (`|cat`) reads the
    // program's stdin. (`readfile('/dev/stdin')` would be more natural, but see `stdin_and_stdout_open_by_path`.)
    stdin: "CREATE TABLE nums(v INTEGER);\n.import '|cat' nums\nSELECT count(*) || ' ' || sum(v) FROM nums;\n",
    // sqlite3 takes no program arguments: its run argv has no {args}. No `args` test for SQL.
    args: "",
    exit: "SELECT 'bye';\n.exit 3\nSELECT 'not reached';\n",
    runtime_error: RuntimeError {
        code: "SELECT 'before';\nSELECT * FROM no_such_table;\nSELECT 'not reached';\n",
        status: ExecStatus::ExitedNonzero,
        exit_code: Some(1),
        signal: None,
        stdout: "before\n",
        stderr_contains: "no such table: no_such_table",
    },
    compile_error: None,
    unicode: ("main.sql", "SELECT 'héllo ✓ 你好 🎉';\n"),
    // `.read` runs the second file (relative to the working directory, /workspace), then the entry uses its table.
    two_files: &[
        (
            "main.sql",
            ".read helper.sql\nSELECT greeting || ', ' || name || ' from helper' FROM people;\n",
        ),
        (
            "helper.sql",
            "CREATE TABLE people(greeting TEXT, name TEXT);\nINSERT INTO people VALUES ('hello', 'world');\n",
        ),
    ],
    cpu_loop: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;\n",
    // An ever longer string: 2 KiB of hex per row, concatenated without end.
    memory_bomb: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)\n\
                  SELECT length(group_concat(hex(randomblob(1024)), '')) FROM c;\n",
};

/// Every language of the table, to check it against the catalogue.
const ALL: &[&Lang] = &[
    &PYTHON,
    &JAVASCRIPT,
    &TYPESCRIPT,
    &BASH,
    &C,
    &CPP,
    &JAVA,
    &GO,
    &RUST,
    &RUBY,
    &PHP,
    &R,
    &PERL,
    &LUA,
    &SQL,
];

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let overrides = std::env::var_os(runbox_lang::LANGUAGES_DIR_ENV).map(std::path::PathBuf::from);
        Catalogue::load(overrides.as_deref()).expect("load the language catalogue")
    })
}

/// Whether `lang`'s runtime is installed. When it is not: under `CI` (or `RUNBOX_REQUIRE_RUNTIMES=1`) the test
/// fails, elsewhere it is skipped with a message.
fn available(lang: &Lang) -> bool {
    static FOUND: OnceLock<BTreeMap<String, Availability>> = OnceLock::new();
    let found = FOUND.get_or_init(|| discovery::discover(catalogue()));
    let availability = found
        .get(lang.id)
        .unwrap_or_else(|| panic!("{} is not in the language catalogue", lang.id));
    if availability.available {
        return true;
    }
    let why = availability.reason.as_deref().unwrap_or("no reason given");
    // CI sets `CI`; scripts/test.sh sets RUNBOX_REQUIRE_RUNTIMES=1 (as the runbox-lang discovery test reads it).
    if std::env::var_os("CI").is_some() || std::env::var("RUNBOX_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!(
            "the {} runtime is missing on this CI host ({why}); install it with scripts/install-runtimes.sh",
            lang.id
        );
    }
    eprintln!("SKIPPED: the {} runtime is not installed ({why})", lang.id);
    false
}

fn is_compiled(lang: &Lang) -> bool {
    catalogue()
        .get(lang.id)
        .unwrap_or_else(|| panic!("{} is not in the catalogue", lang.id))
        .is_compiled()
}

/// Runs `code` as the entry file of `lang` (by id) with extra flags, stdin and arguments.
fn run_code(lang: &Lang, code: &str, flags: &[&str], stdin: Option<&str>, args: &[&str]) -> Execution {
    Submission {
        lang: Some(lang.id),
        code: Some(code),
        flags,
        stdin: stdin.map(str::as_bytes),
        args,
        ..Default::default()
    }
    .execute()
}

/// Checks what every execution of `lang` must be: its language, and a compile stage exactly for compiled
/// languages, whose run stage (when it ran) is what the top level shows.
#[track_caller]
fn assert_shape(lang: &Lang, out: &Execution) {
    assert_eq!(out.language, lang.id, "{out:#?}");
    if !is_compiled(lang) {
        assert!(
            out.compile.is_none() && out.run.is_none(),
            "an interpreted language has no stages: {out:#?}"
        );
        return;
    }
    let compile = out
        .compile
        .as_ref()
        .unwrap_or_else(|| panic!("no compile stage: {out:#?}"));
    if out.status == ExecStatus::CompileError {
        assert!(out.run.is_none(), "the run stage ran after a compile error: {out:#?}");
        assert!(!matches!(compile.status, Status::Ok), "{out:#?}");
        assert_eq!(
            (&out.stdout, &out.stderr),
            (&compile.record.stdout, &compile.record.stderr),
            "{out:#?}"
        );
        return;
    }
    assert_eq!(compile.status, Status::Ok, "compile stage failed: {out:#?}");
    let run = out.run.as_ref().unwrap_or_else(|| panic!("no run stage: {out:#?}"));
    assert!(
        out.status.is(run.status),
        "top-level status is not the run stage's: {out:#?}"
    );
    assert_eq!(
        (&out.stdout, &out.stderr, out.exit_code),
        (&run.record.stdout, &run.record.stderr, run.record.exit_code),
        "{out:#?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The cases, one function each; `language_tests!` calls them for every language.

fn hello_world_prints_exactly(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.hello, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, HELLO_OUT, "{out:#?}");
    assert_eq!(out.exit_code, Some(0));
    assert!(
        out.version.as_deref().is_some_and(|v| !v.is_empty()),
        "no version: {out:#?}"
    );
}

fn reads_stdin(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = Submission {
        lang: Some(lang.alias),
        code: Some(lang.stdin),
        stdin: Some(STDIN_IN.as_bytes()),
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, STDIN_OUT, "{out:#?}");
}

fn receives_command_line_args(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.args, &[], None, ARGS);
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, ARGS_OUT, "{out:#?}");
}

fn nonzero_exit_code_is_reported(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.exit, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::ExitedNonzero);
    assert_shape(lang, &out);
    assert_eq!(
        (out.stdout.as_str(), out.exit_code, out.signal),
        (EXIT_OUT, Some(3), None),
        "{out:#?}"
    );
}

fn runtime_error_is_reported_on_stderr(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let e = &lang.runtime_error;
    let out = run_code(lang, e.code, &[], None, &[]);
    assert_exec_status(&out, e.status);
    assert_shape(lang, &out);
    assert_eq!((out.exit_code, out.signal), (e.exit_code, e.signal), "{out:#?}");
    assert_eq!(out.stdout, e.stdout, "{out:#?}");
    assert!(
        out.stderr.contains(e.stderr_contains),
        "stderr lacks {:?}: {out:#?}",
        e.stderr_contains
    );
}

fn compile_error_is_reported_without_run_stage(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let (code, message) = lang
        .compile_error
        .expect("a compiled language has a compile-error snippet");
    let out = run_code(lang, code, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::CompileError);
    assert_shape(lang, &out);
    let compile = out.compile.as_ref().unwrap();
    assert_eq!(compile.status, Status::ExitedNonzero, "{out:#?}");
    assert!(
        out.stderr.contains(message) || out.stdout.contains(message),
        "the compiler's message {message:?} is in neither stderr nor stdout: {out:#?}"
    );
}

fn prints_unicode(lang: &Lang) {
    if !available(lang) {
        return;
    }
    // No --lang: the entry file's extension says the language.
    let out = Submission {
        files: &[lang.unicode],
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, UNICODE_OUT, "{out:#?}");
}

fn two_file_program_runs(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = Submission {
        lang: Some(lang.id),
        files: lang.two_files,
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, TWO_FILES_OUT, "{out:#?}");
}

fn infinite_loop_is_stopped_by_the_time_limit(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let started = std::time::Instant::now();
    let out = run_code(lang, lang.cpu_loop, &["--timeout-ms", LOOP_TIMEOUT_MS], None, &[]);
    assert!(
        matches!(out.status, ExecStatus::Timeout | ExecStatus::CpuLimit),
        "not stopped by a time limit: {out:#?}"
    );
    assert_shape(lang, &out);
    assert!(out.wall_ms < 5_000, "{out:#?}");
    assert!(started.elapsed().as_secs() < 60);
}

fn memory_bomb_is_memory_limit(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(
        lang,
        lang.memory_bomb,
        &["--memory-mb", BOMB_MEMORY_MB, "--timeout-ms", "20000"],
        None,
        &[],
    );
    assert_exec_status(&out, ExecStatus::MemoryLimit);
    assert_shape(lang, &out);
    // The cgroup's recorded peak may pass its limit by a few pages (charges are batched).
    let limit: u64 = (BOMB_MEMORY_MB.parse::<u64>().unwrap() + 2) << 20;
    assert!(out.memory_peak_bytes.is_some_and(|peak| peak <= limit), "{out:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// The tests.

/// `mod <language> { #[test] fn <case>() }` for each listed case.
macro_rules! language_tests {
    ($module:ident, $lang:ident, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    super::$case(&super::$lang);
                }
            )*
        }
    };
    // The cases every language has except SQL, which takes no arguments.
    (interpreted $module:ident, $lang:ident) => {
        language_tests!($module, $lang, [
            hello_world_prints_exactly,
            reads_stdin,
            receives_command_line_args,
            nonzero_exit_code_is_reported,
            runtime_error_is_reported_on_stderr,
            prints_unicode,
            two_file_program_runs,
            infinite_loop_is_stopped_by_the_time_limit,
            memory_bomb_is_memory_limit,
        ]);
    };
    (compiled $module:ident, $lang:ident) => {
        language_tests!($module, $lang, [
            hello_world_prints_exactly,
            reads_stdin,
            receives_command_line_args,
            nonzero_exit_code_is_reported,
            runtime_error_is_reported_on_stderr,
            compile_error_is_reported_without_run_stage,
            prints_unicode,
            two_file_program_runs,
            infinite_loop_is_stopped_by_the_time_limit,
            memory_bomb_is_memory_limit,
        ]);
    };
}

language_tests!(interpreted python, PYTHON);
language_tests!(interpreted javascript, JAVASCRIPT);
language_tests!(compiled typescript, TYPESCRIPT);
language_tests!(interpreted bash, BASH);
language_tests!(compiled c, C);
language_tests!(compiled cpp, CPP);
language_tests!(compiled java, JAVA);
language_tests!(compiled go, GO);
language_tests!(compiled rust, RUST);
language_tests!(interpreted ruby, RUBY);
language_tests!(interpreted php, PHP);
language_tests!(interpreted r, R);
language_tests!(interpreted perl, PERL);
language_tests!(interpreted lua, LUA);
// No `receives_command_line_args`: sqlite3's run argv has no {args}, SQL has no use for them.
language_tests!(
    sql,
    SQL,
    [
        hello_world_prints_exactly,
        reads_stdin,
        nonzero_exit_code_is_reported,
        runtime_error_is_reported_on_stderr,
        prints_unicode,
        two_file_program_runs,
        infinite_loop_is_stopped_by_the_time_limit,
        memory_bomb_is_memory_limit,
    ]
);

#[test]
fn every_catalogue_language_is_covered_and_every_compiled_one_has_a_compile_error_case() {
    let mut ours: Vec<&str> = ALL.iter().map(|l| l.id).collect();
    let mut theirs: Vec<&str> = catalogue().iter().map(|l| l.id()).collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
    for lang in ALL {
        assert_eq!(is_compiled(lang), lang.compile_error.is_some(), "{}", lang.id);
        let alias = catalogue()
            .get(lang.alias)
            .unwrap_or_else(|| panic!("unknown alias {}", lang.alias));
        assert_eq!(alias.id(), lang.id);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Nothing leaks from one execution to the next through /tmp, in particular not Go's build cache (/tmp/gocache).

#[test]
fn tmp_starts_empty_in_every_run() {
    if !available(&BASH) {
        return;
    }
    let first = run_code(
        &BASH,
        "ls -A /tmp; echo left > /tmp/marker; mkdir /tmp/gocache",
        &[],
        None,
        &[],
    );
    assert_exec_status(&first, ExecStatus::Ok);
    assert_eq!(first.stdout, "", "{first:#?}");
    let second = run_code(&BASH, "ls -A /tmp", &[], None, &[]);
    assert_exec_status(&second, ExecStatus::Ok);
    assert_eq!(second.stdout, "", "{second:#?}");
}

#[test]
fn go_build_cache_does_not_leak_between_runs() {
    if !available(&GO) || !available(&BASH) {
        return;
    }
    // Each run reports whether the previous one's markers are visible, then leaves markers in /tmp and in the
    // build cache (which exists in the run stage only if the stages share /tmp: its own, which is fine).
    let code = "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\
                \tfor _, p := range []string{\"/tmp/go-marker\", \"/tmp/gocache/go-marker\"} {\n\
                \t\tif _, err := os.Stat(p); err == nil {\n\t\t\tfmt.Println(\"leaked:\", p)\n\t\t}\n\t}\n\
                \t_ = os.MkdirAll(\"/tmp/gocache\", 0o755)\n\
                \t_ = os.WriteFile(\"/tmp/go-marker\", []byte(\"x\"), 0o644)\n\
                \t_ = os.WriteFile(\"/tmp/gocache/go-marker\", []byte(\"x\"), 0o644)\n\tfmt.Println(\"done\")\n}\n";
    for _ in 0..2 {
        let out = run_code(&GO, code, &[], None, &[]);
        assert_exec_status(&out, ExecStatus::Ok);
        assert_shape(&GO, &out);
        assert_eq!(out.stdout, "done\n", "{out:#?}");
    }
    let after = run_code(&BASH, "ls -A /tmp", &[], None, &[]);
    assert_exec_status(&after, ExecStatus::Ok);
    assert_eq!(after.stdout, "", "a later run sees another run's /tmp: {after:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Regression: stdio reopened by path.

/// `cat /dev/stdin`, `fs.readFileSync('/dev/stdin')`, `echo x > /dev/stderr`: programs reopen their stdio by path
/// (/proc/self/fd/N), which works because the jail hands the pipes to the sandbox user.
#[test]
fn stdin_and_stdout_open_by_path() {
    if !available(&BASH) {
        return;
    }
    let out = run_code(
        &BASH,
        "cat /dev/stdin; echo out > /dev/stdout; echo err > /dev/stderr",
        &[],
        Some("in\n"),
        &[],
    );
    assert_exec_status(&out, ExecStatus::Ok);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("in\nout\n", "err\n"),
        "{out:#?}"
    );
}
