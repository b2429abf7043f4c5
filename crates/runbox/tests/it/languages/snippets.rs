//! The table behind `languages_behave`: for each catalogue language, a snippet per case (hello world, stdin,
//! arguments, exit code, runtime and compile errors, unicode, two files, a CPU loop, a memory bomb) and what each
//! must print. Data only; the cases that run them are in `languages_behave.rs`.

use crate::common::ExecStatus;

// ---------------------------------------------------------------------------------------------------------------
// What every snippet of a kind must print.

pub(super) const HELLO_OUT: &str = "Hello, World!\n";
/// Given on stdin to the `stdin` snippets, which print how many numbers they read and their sum.
pub(super) const STDIN_IN: &str = "3\n4\n5\n";
pub(super) const STDIN_OUT: &str = "3 12\n";
/// Passed to the `args` snippets, which print how many they got and the arguments joined by `|`. The space, the
/// empty argument, the non-ASCII one and the one that looks like a flag must all arrive untouched.
pub(super) const ARGS: &[&str] = &["a b", "", "ç", "--flag"];
pub(super) const ARGS_OUT: &str = "4 a b||ç|--flag\n";
/// The `exit` snippets print this and then exit with code 3.
pub(super) const EXIT_OUT: &str = "bye\n";
pub(super) const UNICODE_OUT: &str = "héllo ✓ 你好 🎉\n";
/// The entry file of a two-file program calls `greet("world")` from its second file.
pub(super) const TWO_FILES_OUT: &str = "hello, world from helper\n";
/// Time limit of the infinite loops.
pub(super) const LOOP_TIMEOUT_MS: &str = "1500";
/// Memory limit of the memory bombs, far below what they try to allocate.
pub(super) const BOMB_MEMORY_MB: &str = "128";

/// How a snippet's runtime error must end.
pub(super) struct RuntimeError {
    pub(super) code: &'static str,
    /// `ExitedNonzero` with `exit_code`, or `Killed` with `signal` (an uncaught C++ exception, a failed C assertion).
    pub(super) status: ExecStatus,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    /// What the program printed before failing.
    pub(super) stdout: &'static str,
    /// The error message, somewhere in stderr.
    pub(super) stderr_contains: &'static str,
}

/// One language: its id, an alias to select it by, and a snippet for each case.
pub(super) struct Lang {
    pub(super) id: &'static str,
    /// Used instead of the id in `reads_stdin`, so every language is also selected by an alias once.
    pub(super) alias: &'static str,
    /// Prints [`HELLO_OUT`]; run with `--code`.
    pub(super) hello: &'static str,
    /// Reads [`STDIN_IN`] and prints [`STDIN_OUT`].
    pub(super) stdin: &'static str,
    /// Prints [`ARGS_OUT`] when given [`ARGS`].
    pub(super) args: &'static str,
    /// Prints [`EXIT_OUT`] and exits with code 3.
    pub(super) exit: &'static str,
    pub(super) runtime_error: RuntimeError,
    /// For compiled languages: code that does not compile, and part of the compiler's message.
    pub(super) compile_error: Option<(&'static str, &'static str)>,
    /// An entry file (its name says the language: no `--lang`) printing [`UNICODE_OUT`].
    pub(super) unicode: (&'static str, &'static str),
    /// Entry file first; prints [`TWO_FILES_OUT`].
    pub(super) two_files: &'static [(&'static str, &'static str)],
    /// Never ends, burning CPU.
    pub(super) cpu_loop: &'static str,
    /// Allocates, and touches, far more than [`BOMB_MEMORY_MB`].
    pub(super) memory_bomb: &'static str,
}

// ---------------------------------------------------------------------------------------------------------------
// The languages.

pub(super) const PYTHON: Lang = Lang {
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

pub(super) const JAVASCRIPT: Lang = Lang {
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

pub(super) const TYPESCRIPT: Lang = Lang {
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

pub(super) const BASH: Lang = Lang {
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

pub(super) const C: Lang = Lang {
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

pub(super) const CPP: Lang = Lang {
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

pub(super) const JAVA: Lang = Lang {
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

pub(super) const GO: Lang = Lang {
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

pub(super) const RUST: Lang = Lang {
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

pub(super) const RUBY: Lang = Lang {
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

pub(super) const PHP: Lang = Lang {
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

pub(super) const R: Lang = Lang {
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

pub(super) const PERL: Lang = Lang {
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

pub(super) const LUA: Lang = Lang {
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

pub(super) const SQL: Lang = Lang {
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
pub(super) const ALL: &[&Lang] = &[
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
