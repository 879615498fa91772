package Test::Nginx::FakeLLM;

# A fake LLM API for the chat tests: a forked Mojolicious daemon that speaks
# the real wire formats of OpenAI chat completions (POST .../chat/completions)
# and Anthropic messages (POST .../messages), streamed (SSE, as the request's
# "stream" asks) or not, with scripted replies and failure modes.
#
#   my $llm = Test::Nginx::FakeLLM->start;            # http://127.0.0.1:PORT
#   my $tls = Test::Nginx::FakeLLM->start(tls => 1);  # https, $CertDir cert
#   $llm->script({ tool_calls => [ { name => '*exec_cmd',
#                                    arguments => { command => 'ls -l /' } } ] },
#                { text => 'done' });
#   ... nginx talks to $llm->url ...
#   my @reqs = $llm->requests;   # [{ path, headers => {lc name => value},
#                                #    body => decoded JSON }, ...]
#   $llm->stop;
#
# A reply (one per LLM request, in order; when the script is empty the
# "auto" model answers, see below):
#   text => 'answer'              the assistant's text
#   tool_calls => [ { name => 'srv__tool' | '*suffix', arguments => {..}
#                     | arguments_raw => 'text' }, ... ]
#                                 '*suffix': the first tool of the request
#                                 whose name ends with suffix
#   stream => 0|1                 override the request's "stream"
#   delay => 5                    seconds before the response starts
#   chunk_delay => 0.1            seconds between SSE events
#   status => 401, error_type => 'authentication_error',
#   error_message => '...', echo_key => 1 (append the request's key)
#                                 an HTTP error with the provider's body
#   raw => 'text', content_type => 'application/json', raw_status => 200
#                                 a literal body
#   cut_after => N                close the connection after N events
#   no_done => 1                  end the stream cleanly without the final
#                                 events (finish_reason and [DONE], or
#                                 message_delta and message_stop)
#   bad_event => 1                one event with malformed JSON
#   stream_error => { type => 'overloaded_error', message => '...' }
#                                 an error event in the middle of the stream
#
# The auto model: when the last message holds tool results it answers
# "Tool output:\n<results>"; when the user asks "run CMD" and a tool named
# *exec_cmd exists it calls it with {"command":"CMD"}; when the user says
# "use TOOL" it calls the tool whose name ends with TOOL with {}; otherwise it
# answers "You said: <text> (N tools)".

use strict;
use warnings;

use Cpanel::JSON::XS ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

my $JSON = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', ReuseAddr => 1)
        or die "cannot bind: $!\n";
    return $s->sockport;
}

sub start {
    my ($class, %o) = @_;
    my $port = $o{port} // _free_port();
    my $scheme = $o{tls} ? 'https' : 'http';
    my $listen = "$scheme://127.0.0.1:$port";
    if ($o{tls}) {
        my $dir = $o{cert_dir} // $ENV{TEST_NGINX_CERT_DIR};
        $listen .= "?cert=$dir/server.crt&key=$dir/server.key";
    }

    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        # Mojo complains about the connections we cut on purpose
        open STDERR, '>>', $o{log} // $ENV{TEST_FAKE_LLM_LOG} // '/dev/null';
        eval { _serve($listen) };
        print STDERR "fake LLM: $@" if $@;
        POSIX::_exit(0);
    }

    my $self = bless { pid => $pid, port => $port, scheme => $scheme,
                       creator => $$,
                       url => "$scheme://127.0.0.1:$port/v1" }, $class;

    # up when the port accepts
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        if ($s) { close $s; return $self }
        Time::HiRes::sleep(0.05);
    }
    $self->stop;
    die "fake LLM did not start on port $port\n";
}

sub url  { $_[0]{url} }
sub port { $_[0]{port} }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    my $deadline = Time::HiRes::time() + 5;
    while (Time::HiRes::time() < $deadline) {
        last if waitpid($self->{pid}, POSIX::WNOHANG()) == $self->{pid};
        Time::HiRes::sleep(0.02);
    }
    kill 'KILL', $self->{pid} if kill 0, $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop if $_[0]{pid} && $$ == $_[0]{creator} }

# control requests over plain HTTP (the TLS one: over TLS)
sub _control {
    my ($self, $method, $path, $body) = @_;
    require Mojo::UserAgent;
    my $ua = Mojo::UserAgent->new(insecure => 1, request_timeout => 10);
    my $url = "$self->{scheme}://127.0.0.1:$self->{port}$path";
    my $tx = $method eq 'GET' ? $ua->get($url)
           : $ua->post($url => { 'Content-Type' => 'application/json' }
                            => $JSON->encode($body // {}));
    die "fake LLM control $path: " . ($tx->error->{message} // '?') . "\n"
        if $tx->error;
    return $JSON->decode($tx->res->body);
}

sub script   { my $s = shift; $s->_control(POST => '/_script', [@_]) }
sub reset    { $_[0]->_control(POST => '/_reset') }
sub requests { @{ $_[0]->_control(GET => '/_requests') } }
sub pending  { $_[0]->_control(GET => '/_pending')->{pending} }


# ------------------------------------------------------------------------
# the server (child process)
# ------------------------------------------------------------------------

my (@Script, @Requests, $Seq);

sub _serve {
    my ($listen) = @_;
    require Mojolicious;
    require Mojo::Server::Daemon;
    require Mojo::IOLoop;

    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->secrets(['fake-llm']);
    my $r = $app->routes;

    $r->post('/_script' => sub {
        my $c = shift;
        push @Script, @{ $JSON->decode($c->req->body) };
        $c->render(json => { queued => scalar @Script });
    });
    $r->post('/_reset' => sub {
        my $c = shift;
        @Script = ();
        @Requests = ();
        $c->render(json => {});
    });
    $r->get('/_requests' => sub { $_[0]->render(json => \@Requests) });
    $r->get('/_pending' => sub {
        $_[0]->render(json => { pending => scalar @Script });
    });

    $r->post('/*prefix/chat/completions' => sub { _llm(shift, 'openai') });
    $r->post('/chat/completions' => sub { _llm(shift, 'openai') });
    $r->post('/*prefix/messages' => sub { _llm(shift, 'anthropic') });
    $r->post('/messages' => sub { _llm(shift, 'anthropic') });

    my $daemon = Mojo::Server::Daemon->new(app => $app, listen => [$listen],
                                           silent => 1,
                                           inactivity_timeout => 300);
    $daemon->start;
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    Mojo::IOLoop->start;
}

sub _llm {
    my ($c, $provider) = @_;
    $c->inactivity_timeout(300);
    my $req = eval { $JSON->decode($c->req->body) } // {};
    my %h = map { lc($_) => $c->req->headers->header($_) }
            @{ $c->req->headers->names };
    push @Requests, { path => $c->req->url->path->to_string, headers => \%h,
                      body => $req, provider => $provider };

    my $spec = @Script ? shift @Script : _auto($req, $provider);
    my $key = $h{authorization} // $h{'x-api-key'} // '';
    $key =~ s/^Bearer //;

    my $go = sub {
        return unless $c->tx;            # the client went away meanwhile
        _reply($c, $provider, $req, $spec, $key);
    };
    if ($spec->{delay}) {
        Mojo::IOLoop->timer($spec->{delay} => $go);
        $c->render_later;
    } else {
        $go->();
    }
}

sub _tool_names {
    my ($req, $provider) = @_;
    return map { $provider eq 'openai' ? $_->{function}{name} : $_->{name} }
           @{ $req->{tools} || [] };
}

sub _resolve_name {
    my ($req, $provider, $name) = @_;
    return $name unless $name =~ /^\*(.*)$/;
    my $suffix = $1;
    my ($t) = grep { /\Q$suffix\E$/ } _tool_names($req, $provider);
    return $t // "missing_$suffix";
}

# text of the last message, and the tool results at the end of the list
sub _last {
    my ($req, $provider) = @_;
    my @m = @{ $req->{messages} || [] };
    my (@results, $text);
    if ($provider eq 'openai') {
        while (@m && $m[-1]{role} eq 'tool') {
            unshift @results, pop(@m)->{content};
        }
        ($text) = map { $_->{content} } grep { $_->{role} eq 'user' } @m;
        my @u = grep { $_->{role} eq 'user' } @m;
        $text = @u ? $u[-1]{content} : '';
    } else {
        my $last = $m[-1] // {};
        my $content = $last->{content};
        if (ref $content eq 'ARRAY') {
            for my $b (@$content) {
                next unless ($b->{type} // '') eq 'tool_result';
                my $t = $b->{content};
                $t = join '', map { $_->{text} // '' } @$t if ref $t;
                $t = "ERROR: $t" if $b->{is_error};
                push @results, $t;
            }
            $text = join '', map { $_->{text} // '' }
                    grep { ($_->{type} // '') eq 'text' } @$content;
        } else {
            $text = $content // '';
        }
    }
    return ($text // '', @results);
}

sub _auto {
    my ($req, $provider) = @_;
    my ($text, @results) = _last($req, $provider);
    return { text => "Tool output:\n" . join("\n", @results) } if @results;
    my @tools = _tool_names($req, $provider);
    if ($text =~ /\brun\s+(.+?)\s*$/i && grep { /exec_cmd$/ } @tools) {
        return { tool_calls => [ { name => '*exec_cmd',
                                   arguments => { command => $1 } } ] };
    }
    if ($text =~ /\buse\s+(\S+)/i) {
        return { tool_calls => [ { name => "*$1", arguments => {} } ] };
    }
    return { text => "You said: $text (" . scalar(@tools) . " tools)" };
}

sub _reply {
    my ($c, $provider, $req, $spec, $key) = @_;

    if (my $st = $spec->{status}) {
        my $msg = $spec->{error_message} // "fake error $st";
        $msg .= " $key" if $spec->{echo_key};
        my $type = $spec->{error_type} // 'api_error';
        my $body = $provider eq 'openai'
            ? { error => { message => $msg, type => $type, param => undef,
                           code => undef } }
            : { type => 'error', error => { type => $type,
                                            message => $msg } };
        return $c->render(status => $st, json => $body);
    }
    if (defined $spec->{raw}) {
        $c->res->headers->content_type($spec->{content_type}
                                       // 'application/json');
        return $c->render(status => $spec->{raw_status} // 200,
                          data => $spec->{raw});
    }

    my @calls = map {
        my $args = defined $_->{arguments_raw} ? $_->{arguments_raw}
                 : $JSON->encode($_->{arguments} // {});
        { id => ($provider eq 'openai' ? 'call_' : 'toolu_') . ++$Seq,
          name => _resolve_name($req, $provider, $_->{name}),
          args => $args }
    } @{ $spec->{tool_calls} || [] };
    my $text = $spec->{text} // (@calls ? '' : 'ok');
    my $stream = $spec->{stream} // $req->{stream};
    my $model = $req->{model} // 'fake';

    if (!$stream) {
        my $body;
        if ($provider eq 'openai') {
            $body = { id => 'chatcmpl-' . ++$Seq, object => 'chat.completion',
                created => time, model => $model,
                choices => [ { index => 0, message => {
                    role => 'assistant',
                    content => length $text ? $text : undef,
                    @calls ? (tool_calls => [ map { { id => $_->{id},
                        type => 'function', function => {
                            name => $_->{name}, arguments => $_->{args} } } }
                        @calls ]) : () },
                    finish_reason => @calls ? 'tool_calls' : 'stop' } ],
                usage => { prompt_tokens => 10, completion_tokens => 5,
                           total_tokens => 15 } };
        } else {
            $body = { id => 'msg_' . ++$Seq, type => 'message',
                role => 'assistant', model => $model,
                content => [ length $text ? ({ type => 'text',
                                               text => $text }) : (),
                    map { { type => 'tool_use', id => $_->{id},
                            name => $_->{name},
                            input => $JSON->decode($_->{args}) } } @calls ],
                stop_reason => @calls ? 'tool_use' : 'end_turn',
                stop_sequence => undef,
                usage => { input_tokens => 10, output_tokens => 5 } };
        }
        if ($spec->{bad_event}) {
            my $s = $JSON->encode($body);
            substr($s, -10) = '';
            $c->res->headers->content_type('application/json');
            return $c->render(data => $s);
        }
        return $c->render(json => $body);
    }

    # SSE
    my @ev = $provider eq 'openai' ? _openai_events($model, $text, \@calls)
                                   : _anthropic_events($model, $text, \@calls);
    if ($spec->{stream_error}) {
        my $e = $spec->{stream_error};
        my $err = $provider eq 'openai'
            ? "data: " . $JSON->encode({ error => $e }) . "\n\n"
            : "event: error\ndata: " . $JSON->encode({ type => 'error',
                                                        error => $e }) . "\n\n";
        splice @ev, 2, scalar(@ev) - 2, $err;
    }
    if ($spec->{bad_event}) {
        splice @ev, 2, 0, "data: {\"choices\":[{\"delta\":{\"content\":\n\n";
    }
    # the stream ends cleanly, but before the reply is complete
    splice @ev, $provider eq 'openai' ? -3 : -2 if $spec->{no_done};

    $c->res->headers->content_type('text/event-stream');
    $c->res->headers->cache_control('no-cache');
    my $n = 0;
    my $delay = $spec->{chunk_delay} // 0;
    my $cut = $spec->{cut_after};
    my $next;
    $next = sub {
        if (defined $cut && $n >= $cut) {
            my $stream = Mojo::IOLoop->stream($c->tx->connection);
            $stream->close if $stream;
            undef $next;
            return;
        }
        if (!@ev) {
            $c->write_chunk('');        # the end of the chunked body
            undef $next;
            return;
        }
        my $e = shift @ev;
        $n++;
        $c->write_chunk($e, sub {
            return unless $next;
            $delay ? Mojo::IOLoop->timer($delay => $next) : $next->();
        });
    };
    $next->();
}

sub _pieces {
    my ($s, $n) = @_;
    my @p;
    push @p, substr($s, 0, $n, '') while length $s;
    return @p;
}

sub _openai_events {
    my ($model, $text, $calls) = @_;
    my $id = 'chatcmpl-' . ++$Seq;
    my $chunk = sub {
        my ($delta, $finish) = @_;
        return 'data: ' . $JSON->encode({ id => $id,
            object => 'chat.completion.chunk', created => time,
            model => $model, choices => [ { index => 0, delta => $delta,
            finish_reason => $finish } ] }) . "\n\n";
    };
    my @ev = ($chunk->({ role => 'assistant', content => '' }, undef));
    push @ev, $chunk->({ content => $_ }, undef) for _pieces($text, 5);
    my $i = 0;
    for my $call (@$calls) {
        push @ev, $chunk->({ tool_calls => [ { index => $i, id => $call->{id},
            type => 'function', function => { name => $call->{name},
                                              arguments => '' } } ] }, undef);
        push @ev, $chunk->({ tool_calls => [ { index => $i,
            function => { arguments => $_ } } ] }, undef)
            for _pieces($call->{args}, 7);
        $i++;
    }
    push @ev, $chunk->({}, @$calls ? 'tool_calls' : 'stop');
    push @ev, 'data: ' . $JSON->encode({ id => $id,
        object => 'chat.completion.chunk', choices => [],
        usage => { prompt_tokens => 10, completion_tokens => 5 } }) . "\n\n";
    push @ev, "data: [DONE]\n\n";
    return @ev;
}

sub _anthropic_events {
    my ($model, $text, $calls) = @_;
    my $ev = sub {
        my ($type, $data) = @_;
        return "event: $type\ndata: "
               . $JSON->encode({ type => $type, %$data }) . "\n\n";
    };
    my @ev = ($ev->(message_start => { message => { id => 'msg_' . ++$Seq,
        type => 'message', role => 'assistant', content => [],
        model => $model, stop_reason => undef, stop_sequence => undef,
        usage => { input_tokens => 10, output_tokens => 1 } } }));
    my $index = 0;
    if (length $text) {
        push @ev, $ev->(content_block_start => { index => $index,
            content_block => { type => 'text', text => '' } });
        push @ev, $ev->(ping => {});
        push @ev, $ev->(content_block_delta => { index => $index,
            delta => { type => 'text_delta', text => $_ } })
            for _pieces($text, 5);
        push @ev, $ev->(content_block_stop => { index => $index });
        $index++;
    }
    for my $call (@$calls) {
        push @ev, $ev->(content_block_start => { index => $index,
            content_block => { type => 'tool_use', id => $call->{id},
                               name => $call->{name}, input => {} } });
        push @ev, $ev->(content_block_delta => { index => $index,
            delta => { type => 'input_json_delta', partial_json => $_ } })
            for ('', _pieces($call->{args}, 7));
        push @ev, $ev->(content_block_stop => { index => $index });
        $index++;
    }
    push @ev, $ev->(message_delta => { delta => {
        stop_reason => @$calls ? 'tool_use' : 'end_turn',
        stop_sequence => undef }, usage => { output_tokens => 15 } });
    push @ev, $ev->(message_stop => {});
    return @ev;
}

1;
