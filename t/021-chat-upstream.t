# The chat API when the LLM API fails: connection refused, a certificate
# that does not verify (and one that does, with ca_file), HTTP 4xx/5xx with
# the provider's error body (the API key echoed in it is redacted),
# malformed JSON, a malformed event, a stream cut in the middle, a stream
# that ends early, an error event inside the stream, a time-out, a failure
# after a tool round.  Each reaches the caller as a clear JSON error (or an
# SSE "error" event); the worker stays healthy, does not leak descriptors,
# and the key never reaches the log.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil;

master_on();
workers(1);

cert_dir();
our $LLM = Test::Nginx::FakeLLM->start;
our $TLS = Test::Nginx::FakeLLM->start(tls => 1, cert_dir => $CertDir);
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;
$ENV{TEST_NGINX_TLS_URL} = $TLS->url;
$ENV{TEST_NGINX_CLOSED_URL} = 'http://127.0.0.1:' . free_port() . '/v1';

run_tests();

$LLM->stop;
$TLS->stop;

# the worker's open descriptors
sub worker_fds {
    my ($pid) = nginx_worker_pids();
    opendir my $d, "/proc/$pid/fd" or die "/proc/$pid/fd: $!\n";
    return scalar grep { /^\d+$/ } readdir $d;
}

# a chat whose reply must be an error of this type and status
sub failing {
    my ($label, $path, $status, $type, $re, %o) = @_;
    my $r = chat(path => $path, msg => { message => $o{message} // 'hi' },
                 %o);
    is($r->{status}, $status, "$label: $status");
    is($r->{json}{error}{type}, $type, "$label: $type");
    like($r->{json}{error}{message}, $re, "$label: the message");
    return $r;
}

__DATA__

=== TEST 1: every failure class is a clear JSON error; the worker stays healthy, nothing leaks, the key is never logged
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent ok {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL
        api_key=sk-very-secret-key-0001 timeout=1s;
}
reverse_mcp_agent anth {
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL
        api_key=sk-very-secret-key-0002;
}
reverse_mcp_agent refused {
    llm provider=openai model=m base_url=$TEST_NGINX_CLOSED_URL;
}
reverse_mcp_agent tls {
    llm provider=openai model=m base_url=$TEST_NGINX_TLS_URL;
}
reverse_mcp_agent tls_ok {
    llm provider=anthropic model=m base_url=$TEST_NGINX_TLS_URL
        ca_file=$TEST_NGINX_CERT_DIR/ca.crt;
}
--- config
location = /status { reverse_mcp_status; }
location /ok { reverse_mcp_chat ok; }
location /anth { reverse_mcp_chat anth; }
location /refused { reverse_mcp_chat refused; }
location /tls { reverse_mcp_chat tls; }
location /tls_ok { reverse_mcp_chat tls_ok; }
--- test_code
my ($L, $T) = ($main::LLM, $main::TLS);
$L->reset;
$T->reset;
my $r = chat(path => '/ok', msg => { message => 'warm up' });
is($r->{status}, 200, 'a working chat first');
my $fds = main::worker_fds();

for my $pass (1 .. 3) {
    main::failing('refused', '/refused', 502, 'llm_connect',
        qr{^cannot connect to the LLM API at http://127\.0\.0\.1:\d+/v1: .*(refused|Could not connect|Failed to connect)}i);

    main::failing('certificate', '/tls', 502, 'llm_tls',
        qr{^TLS error with the LLM API at https://127\.0\.0\.1:\d+/v1: .*(certificate|SSL)}i);

    $L->script({ status => 401, error_type => 'invalid_request_error',
                 error_message => 'Incorrect API key provided:',
                 echo_key => 1 });
    $r = main::failing('HTTP 401', '/ok', 502, 'llm_http',
        qr{^the LLM API answered HTTP 401 \(invalid_request_error\): Incorrect API key provided: \[redacted\]$});
    is($r->{json}{error}{upstream_status}, 401, 'HTTP 401: upstream_status');
    unlike($r->{body}, qr/very-secret/, 'HTTP 401: the key is not echoed');

    $L->script({ status => 529, error_type => 'overloaded_error',
                 error_message => 'Overloaded' });
    main::failing('HTTP 529 (Anthropic)', '/anth', 502, 'llm_http',
        qr{^the LLM API answered HTTP 529 \(overloaded_error\): Overloaded$});

    $L->script({ raw => "<html><body>Bad Gateway\nfrom a proxy</body></html>",
                 raw_status => 503, content_type => 'text/html' });
    main::failing('HTTP 503, not JSON', '/ok', 502, 'llm_http',
        qr{^the LLM API answered HTTP 503: <html><body>Bad Gateway from a proxy</body></html>$});

    $L->script({ raw => '{"choices": [', stream => 0 });
    main::failing('malformed JSON', '/ok', 502, 'llm_bad_response',
        qr{^the LLM API sent malformed JSON: });

    $L->script({ raw => '{"id":"x"}' });
    main::failing('JSON without choices', '/ok', 502, 'llm_bad_response',
        qr{^the LLM API reply has no "choices"$});

    $L->script({ text => 'hello there', bad_event => 1 });
    main::failing('a malformed event', '/ok', 502, 'llm_bad_response',
        qr{^the LLM API sent malformed JSON in its stream: });

    $L->script({ text => 'a long answer that is cut', cut_after => 3 });
    main::failing('stream cut (OpenAI)', '/ok', 502, 'llm_stream_cut',
        qr{^the connection to the LLM API at http://\S+ broke before the reply was complete: });

    $L->script({ text => 'a long answer that is cut', cut_after => 4 });
    main::failing('stream cut (Anthropic)', '/anth', 502, 'llm_stream_cut',
        qr{^the connection to the LLM API at http://\S+ broke before the reply was complete: });

    $L->script({ text => 'an answer without end', no_done => 1 });
    main::failing('stream ends early (OpenAI)', '/ok', 502, 'llm_stream_cut',
        qr{^the LLM stream ended before the reply was complete \(no final event\)$});

    $L->script({ text => 'an answer without end', no_done => 1 });
    main::failing('stream ends early (Anthropic)', '/anth', 502,
        'llm_stream_cut',
        qr{^the LLM stream ended before the reply was complete \(no final event\)$});

    $L->script({ text => 'an answer', stream_error => {
        type => 'overloaded_error', message => 'Overloaded' } });
    main::failing('an error event (Anthropic)', '/anth', 502,
        'llm_api_error',
        qr{^the LLM API reported an error \(overloaded_error\): Overloaded$});

    $L->script({ text => 'an answer', stream_error => {
        type => 'server_error', message => 'The server had an error' } });
    main::failing('an error chunk (OpenAI)', '/ok', 502, 'llm_api_error',
        qr{^the LLM API reported an error \(server_error\): The server had an error$});

    $L->script({ text => 'too slow', delay => 3 });
    main::failing('time-out', '/ok', 504, 'llm_timeout',
        qr{^the LLM API at http://\S+ did not answer in time \(timeout 1000ms\)});
}

# an SSE client gets the failure as the last event
$L->script({ status => 500, error_message => 'boom' });
$r = chat(path => '/ok', msg => { message => 'hi' }, sse => 1);
is($r->{status}, 200, 'SSE: 200 (the stream had started)');
is_deeply([ map { $_->{event} } @{ $r->{events} } ], [qw(status error)],
          'SSE: thinking, then the error');
is($r->{json}{error}{type}, 'llm_http', 'SSE: the error event');
like($r->{json}{error}{message}, qr/HTTP 500 \(api_error\): boom/,
     'SSE: its message');
ok($r->{complete}, 'SSE: the stream ended properly');

# a certificate that verifies with ca_file
$r = chat(path => '/tls_ok', msg => { message => 'over tls' });
is($r->{status}, 200, 'ca_file: the TLS LLM answers');
is($r->{json}{answer}, 'You said: over tls (0 tools)', 'ca_file: the answer');

# still healthy, nothing left open (curl may keep connections to reuse)
$r = chat(path => '/ok', msg => { message => 'still there?' });
is($r->{status}, 200, 'the worker still answers');
is($r->{json}{answer}, 'You said: still there? (0 tools)', '... normally');
my $now = main::worker_fds();
cmp_ok($now, '<=', $fds + 3, "descriptors: $fds before, $now after 45 "
       . "failures");
--- no_error_log
[alert]
[crit]
[emerg]
sk-very-secret-key-0001
sk-very-secret-key-0002
--- error_log
reverse_mcp: llm: llm_connect: cannot connect to the LLM API
reverse_mcp: llm: llm_tls: TLS error with the LLM API
reverse_mcp: llm: llm_http: the LLM API answered HTTP 401 (invalid_request_error): Incorrect API key provided: [redacted]



=== TEST 2: a failure after a tool round keeps the tool calls in the error; the conversation is not saved
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
my $L = $main::LLM;
$L->reset;
my $s = up(name => 's1');
$L->script({ tool_calls => [ { name => 's1__echo',
                               arguments => { text => 'first' } } ] },
           { status => 500, error_message => 'went wrong' });
my $r = chat(msg => { message => 'go', context_id => 'f1' },
             servers => [$s]);
is($r->{status}, 502, 'status 502');
is($r->{json}{error}{type}, 'llm_http', 'llm_http');
is($r->{json}{tool_calls}[0]{result}, 'first', 'the tool round is reported');
is($r->{json}{rounds}, 2, 'in round 2');
is($r->{json}{context_id}, 'f1', 'the context id');
$r = chat(msg => { message => '/history', context_id => 'f1' });
is($r->{json}{answer}, "No conversation history.\n",
   'a failed message leaves no history');
--- no_error_log
[alert]
[crit]
