# runbox's R session worker: one persistent global environment inside the sandbox. Cells arrive on fd 3 as
# `EXEC <id> <nbytes>` plus the code; each expression is evaluated in the global environment, so variables,
# functions and attached packages persist. Replies go to fd 4 as JSON lines; user output goes to fds 1 and 2.
# Base R only (JSON is written by hand).
proto_in <- file("/proc/self/fd/3", open = "rb", raw = TRUE)
proto_out <- file("/proc/self/fd/4", open = "wb", raw = TRUE)

json_string <- function(s) {
  s <- enc2utf8(paste(s, collapse = "\n"))
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\r", "\\r", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  s <- gsub("[\001-\037]", " ", s)
  paste0("\"", s, "\"")
}

send_line <- function(line) {
  flush(stdout())
  flush(stderr())
  writeBin(charToRaw(paste0(line, "\n")), proto_out)
  flush(proto_out)
}

read_line <- function() {
  bytes <- raw(0)
  repeat {
    b <- readBin(proto_in, "raw", 1L)
    if (length(b) == 0L) return(NULL)
    if (b == as.raw(10L)) return(rawToChar(bytes))
    bytes <- c(bytes, b)
  }
}

send_line(sprintf('{"event":"ready","language":"r","version":%s}', json_string(paste(R.version$major, R.version$minor, sep = "."))))
count <- 0L
repeat {
  header <- tryCatch(read_line(), interrupt = function(e) "")
  if (is.null(header)) break
  parts <- strsplit(header, " ", fixed = TRUE)[[1]]
  if (length(parts) != 3L || parts[1] != "EXEC") next
  id <- parts[2]
  code <- rawToChar(readBin(proto_in, "raw", as.integer(parts[3])))
  count <- count + 1L
  reply <- tryCatch({
    exprs <- parse(text = code, keep.source = FALSE, srcfile = NULL)
    value <- NULL
    visible <- FALSE
    for (e in exprs) {
      r <- withVisible(eval(e, envir = globalenv()))
      value <- r$value
      visible <- r$visible
    }
    result <- if (visible && !is.null(value)) {
      sprintf('{"text/plain":%s}', json_string(utils::capture.output(print(value))))
    } else "null"
    sprintf('"status":"ok","result":%s', result)
  }, interrupt = function(e) {
    '"status":"interrupted","error":{"name":"interrupt","value":"","traceback":""}'
  }, error = function(e) {
    msg <- conditionMessage(e)
    call <- if (is.null(conditionCall(e))) "" else paste(deparse(conditionCall(e)), collapse = " ")
    if (startsWith(call, "eval(e, envir = globalenv())")) call <- ""  # the worker's own frame
    sprintf('"status":"error","error":{"name":"error","value":%s,"traceback":%s}',
            json_string(msg), json_string(if (nzchar(call)) paste0("Error in ", call, ": ", msg) else paste0("Error: ", msg)))
  })
  send_line(sprintf('{"event":"done","id":%s,"execution_count":%d,%s}', id, count, reply))
}
