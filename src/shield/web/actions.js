// Operator actions on a deployment: cancel while it runs, roll back once it finished, approve or
// reject while it waits for a person. Shown only when the server says this caller may write.
import { api, session } from './api.js';
import { ACTIVE, formatTime, h } from './dom.js';

const CONFIRM_MS = 5000;

/** A button that asks for a second click before it acts. */
export function confirmButton(label, confirmLabel, action) {
  let armed;
  const button = h('button', { type: 'button', class: 'action' }, label);
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add('armed');
      armed = setTimeout(() => {
        armed = undefined;
        button.textContent = label;
        button.classList.remove('armed');
      }, CONFIRM_MS);
      return;
    }
    clearTimeout(armed);
    armed = undefined;
    button.classList.remove('armed');
    button.textContent = label;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A status line for an action's outcome, and a function that runs a POST and reports into it. */
export function actionResult() {
  const result = h('span', { class: 'action-result', role: 'status' });
  const post = async (verb, path, body = {}) => {
    result.textContent = `${verb}…`;
    result.className = 'action-result';
    try {
      const answer = await api(path, { method: 'POST', body });
      result.textContent = `${verb} requested (${answer.status ?? 'accepted'})`;
      return answer;
    } catch (error) {
      result.textContent = `${verb} failed: ${error.message}`;
      result.className = 'action-result error';
      return undefined;
    }
  };
  return { result, post };
}

/** The buttons that fit a deployment's status, and where their outcome is shown. */
export function deploymentActions(record) {
  if (!session.canWrite) return null;
  const { result, post } = actionResult();
  const id = encodeURIComponent(record.id);
  const buttons = [];
  if (ACTIVE.has(record.status)) {
    buttons.push(
      confirmButton('Cancel', 'Confirm cancel', () => post('cancel', `/api/deployments/${id}/cancel`)),
    );
  }
  if (record.status === 'SUCCESS' || record.status === 'FAILURE') {
    buttons.push(
      confirmButton('Roll back', 'Confirm roll back', () =>
        post('rollback', `/api/deployments/${id}/rollback`),
      ),
    );
  }
  return h('div', { class: 'actions' }, buttons, result);
}

/** `Waits for approval of environment by deployer until 01/03/2026, 11:00:00`. */
export function waitingText(waitingFor) {
  const by = waitingFor.approvers || 'any operator';
  const until = waitingFor.deadline ? ` until ${formatTime(waitingFor.deadline)}` : '';
  return `Waits for approval of ${waitingFor.gate} by ${by}${until}`;
}

/**
 * Banners already built, by deployment and request: a record update rebuilds the card or page
 * around the banner, and reusing it keeps a comment being typed.
 */
const banners = new Map();

/**
 * The banner of a deployment that waits for a person (`record.waitingFor`), with Approve and
 * Reject for operators: each opens a comment field and asks for a second click.
 */
export function approvalBanner(record) {
  const waitingFor = record.waitingFor;
  if (!waitingFor || !ACTIVE.has(record.status)) {
    for (const key of banners.keys()) if (key.startsWith(`${record.id}\n`)) banners.delete(key);
    return null;
  }
  const key = `${record.id}\n${waitingFor.eventId}\n${session.canWrite}`;
  const known = banners.get(key);
  if (known) return known;
  const banner = h(
    'div',
    { class: 'approval-banner', role: 'alert', 'data-gate': waitingFor.gate },
    h('strong', { class: 'approval-text' }, waitingText(waitingFor)),
    waitingFor.reason ? h('p', { class: 'approval-reason' }, waitingFor.reason) : null,
    session.canWrite ? answerControls(record) : null,
  );
  banners.set(key, banner);
  return banner;
}

function answerControls(record) {
  const { result, post } = actionResult();
  const id = encodeURIComponent(record.id);
  const comment = h('input', {
    type: 'text',
    class: 'approval-comment',
    'aria-label': 'Comment',
    placeholder: 'comment (optional)',
    maxlength: '500',
  });
  const form = h('div', { class: 'approval-form' });
  form.hidden = true;
  const choose = (verb) => {
    const confirm = h('button', { type: 'button', class: 'action armed' }, `Confirm ${verb}`);
    const back = h('button', { type: 'button' }, 'Back');
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      const text = comment.value.trim();
      const answer = await post(verb, `/api/deployments/${id}/${verb}`, text ? { comment: text } : {});
      confirm.disabled = false;
      if (answer) form.hidden = true;
    });
    back.addEventListener('click', () => {
      form.hidden = true;
    });
    form.replaceChildren(comment, confirm, back);
    form.hidden = false;
    comment.focus();
  };
  const approve = h('button', { type: 'button', class: 'action approve' }, 'Approve');
  const reject = h('button', { type: 'button', class: 'action reject' }, 'Reject');
  approve.addEventListener('click', () => choose('approve'));
  reject.addEventListener('click', () => choose('reject'));
  return h('div', { class: 'actions' }, approve, reject, form, result);
}
