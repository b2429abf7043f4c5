# runbox's Ruby session worker: one persistent binding inside the sandbox. Cells arrive on fd 3 as
# `EXEC <id> <nbytes>` plus the code and run with `eval` in the same binding, so local variables, methods and
# requires persist. Replies go to fd 4 as JSON lines; user output goes to fds 1 and 2. Standard library only.
require 'json'

$stdout.sync = true
$stderr.sync = true
proto_in = IO.new(3, 'rb')
proto_out = IO.new(4, 'wb')
proto_out.sync = true
# SIGINT interrupts only a running cell; while the worker reads a cell or replies it is ignored (the engine
# repeats the interrupt until the cell stops).
running = false
trap('INT') { raise Interrupt if running }

session = binding
count = 0
send_message = lambda do |msg|
  $stdout.flush
  $stderr.flush
  proto_out.write(JSON.generate(msg) + "\n")
end
send_message.call(event: 'ready', language: 'ruby', version: RUBY_VERSION)

loop do
  header = begin
    proto_in.gets
  rescue Interrupt
    next
  end
  break if header.nil?
  word, id, size = header.split
  next unless word == 'EXEC'
  code = proto_in.read(size.to_i).to_s.force_encoding('UTF-8')
  count += 1
  reply = begin
    running = true
    value = begin
      session.eval(code, "<cell #{count}>", 1)
    ensure
      running = false
    end
    { status: 'ok', result: value.nil? ? nil : { 'text/plain' => value.inspect } }
  rescue Interrupt
    { status: 'interrupted', error: { name: 'Interrupt', value: '', traceback: '' } }
  rescue SystemExit => e
    { status: 'exit', exit_code: e.status }
  rescue Exception => e # rubocop:disable Lint/RescueException -- the user's error, whatever it is
    frames = (e.backtrace || []).select { |f| f.start_with?('<cell') }
    trace = (["#{e.class}: #{e.message}"] + frames.map { |f| "  from #{f}" }).join("\n")
    { status: 'error', error: { name: e.class.to_s, value: e.message, traceback: trace } }
  end
  send_message.call(reply.merge(event: 'done', id: id.to_i, execution_count: count))
  exit!(reply[:exit_code] || 0) if reply[:status] == 'exit'
end
