import nodemailer from 'nodemailer';
import { describeCause } from '../../../errors/index.js';
import { expandReferences } from '../../../runtime/references.js';
import type { NotificationMessage } from '../notification.js';
import type { EmailChannelSettings } from '../settings.js';
import { renderTemplate } from '../templates.js';
import { summaryFields } from './slack.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * E-mail over SMTP with nodemailer: a multipart message with a text and an HTML part, the
 * subject from the `emailSubject` template. One connection per message: notifications are rare,
 * and a fresh connection picks up resolved secrets and never holds an idle socket.
 *
 * @module
 */

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const COLOURS = { info: '#2e7d32', warning: '#ef6c00', critical: '#c62828' } as const;

/** What the link to Shield offers: a deployment waiting for a person is answered there. */
function shieldLinkLabel(message: NotificationMessage): string {
  return message.phase === 'waiting' ? 'Approve or reject in Shield' : 'Open in Shield';
}

/** The plain-text part. */
export function emailText(message: NotificationMessage): string {
  const lines = [message.headline, message.subject, ''];
  if (message.summary) lines.push(message.summary, '');
  if (message.problem?.reason) lines.push(`Reason: ${message.problem.reason}`);
  for (const [label, value] of summaryFields(message)) lines.push(`${label}: ${value}`);
  if (message.problem?.details) lines.push('', 'Details:', message.problem.details);
  lines.push(
    '',
    `${shieldLinkLabel(message)}: ${message.link}`,
    '',
    `Event ${message.event.type} ${message.event.id} at ${message.event.time.toISOString()}`,
  );
  return `${lines.join('\n')}\n`;
}

/** The HTML part: a heading, the reason, a table of facts and a link to Shield. */
export function emailHtml(message: NotificationMessage): string {
  const rows = summaryFields(message)
    .map(
      ([label, value]) =>
        `<tr><th align="left" style="padding:4px 12px 4px 0">${escapeHtml(label)}</th><td style="padding:4px 0">${escapeHtml(value)}</td></tr>`,
    )
    .join('');
  const summary = message.summary ? `<p>${escapeHtml(message.summary)}</p>` : '';
  const reason = message.problem?.reason ? `<p>${escapeHtml(message.problem.reason)}</p>` : '';
  const details = message.problem?.details
    ? `<pre style="background:#f5f5f5;padding:8px;white-space:pre-wrap">${escapeHtml(message.problem.details)}</pre>`
    : '';
  return [
    '<!doctype html><html><body style="font-family:sans-serif">',
    `<h2 style="color:${COLOURS[message.severity]}">${escapeHtml(message.headline)}</h2>`,
    `<p><strong>${escapeHtml(message.subject)}</strong></p>`,
    summary,
    reason,
    `<table>${rows}</table>`,
    details,
    `<p><a href="${escapeHtml(message.link)}">${shieldLinkLabel(message)}</a></p>`,
    `<p style="color:#777;font-size:12px">${escapeHtml(message.event.type)} ${escapeHtml(message.event.id)} · ${message.event.time.toISOString()}</p>`,
    '</body></html>',
  ].join('\n');
}

export const createEmailChannel: ChannelFactory<EmailChannelSettings> = (settings, deps) => {
  const target = `email:${deps.name}`;
  return {
    name: deps.name,
    type: 'email',
    target,
    tracksIncidents: false,
    async send(message, options) {
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const timeoutMs = resolved.timeoutMs ?? deps.timeoutMs;
      const smtp = resolved.smtp;
      const transport = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        requireTLS: smtp.requireTLS,
        ignoreTLS: smtp.ignoreTLS,
        auth: smtp.auth ? { user: smtp.auth.user, pass: smtp.auth.pass } : undefined,
        tls: { rejectUnauthorized: smtp.rejectUnauthorized },
        connectionTimeout: timeoutMs,
        greetingTimeout: timeoutMs,
        socketTimeout: timeoutMs,
      });
      const abort = () => transport.close();
      options?.signal?.addEventListener('abort', abort, { once: true });
      try {
        const info = await transport.sendMail({
          from: resolved.from,
          to: resolved.to,
          cc: resolved.cc,
          subject: renderTemplate(deps.templates.emailSubject, message.values) || message.headline,
          text: emailText(message),
          html: emailHtml(message),
          headers: {
            'X-Materi-Event': message.event.type,
            'X-Materi-Event-Id': message.event.id,
            'X-Materi-Severity': message.severity,
          },
        });
        const rejected = info.rejected.length;
        return {
          providerId: info.messageId,
          detail: `${info.response}${rejected > 0 ? ` (${rejected} recipient(s) rejected)` : ''}`,
        };
      } catch (error) {
        if (options?.signal?.aborted) throw new ChannelError(`${target}: sending aborted`);
        // nodemailer's messages name the SMTP reply (`Invalid login: 535 …`), never the password.
        throw new ChannelError(
          `${target}: SMTP ${smtp.host}:${smtp.port} refused or failed: ${describeCause(error).split('\n')[0]}`,
        );
      } finally {
        options?.signal?.removeEventListener('abort', abort);
        transport.close();
      }
    },
  };
};
