//! Connection resets, which an HTTP framework cannot produce: a small HTTP/1.1 relay in front of the
//! emulated Graph that, for a share of requests, drops the client's connection with a TCP RST instead
//! of forwarding the request (Graph never sees it). Only used when `EmulatorState::reset_share` > 0.
//! Framing is by `Content-Length`, which is all the handler and the emulator use.

use super::EmulatorState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub async fn run(public: std::net::TcpListener, upstream: SocketAddr, state: Arc<EmulatorState>) {
    public.set_nonblocking(true).expect("nonblocking listener");
    let listener = TcpListener::from_std(public).expect("tokio listener");
    while let Ok((client, _)) = listener.accept().await {
        let state = Arc::clone(&state);
        actix_web::rt::spawn(async move {
            let _ = relay(client, upstream, &state).await;
        });
    }
}

/// Reads one HTTP/1.1 message (head + `Content-Length` body); `None` at a clean end of stream.
async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(value) = text.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        message.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    message.extend_from_slice(&body);
    Ok(Some(message))
}

async fn relay(client: TcpStream, upstream: SocketAddr, state: &EmulatorState) -> std::io::Result<()> {
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let server = TcpStream::connect(upstream).await?;
    let (server_read, mut server_write) = server.into_split();
    let mut server_read = BufReader::new(server_read);
    while let Some(request) = read_message(&mut client_read).await? {
        if fastrand::f64() < state.reset_share {
            state.resets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let client = client_read
                .into_inner()
                .reunite(client_write)
                .map_err(std::io::Error::other)?;
            // A zero linger makes close() send RST at once (it does not block, unlike a non-zero one).
            #[allow(deprecated)]
            client.set_linger(Some(Duration::ZERO))?;
            drop(client);
            return Ok(());
        }
        server_write.write_all(&request).await?;
        let Some(response) = read_message(&mut server_read).await? else {
            return Ok(());
        };
        client_write.write_all(&response).await?;
    }
    Ok(())
}
