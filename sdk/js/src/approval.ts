// What the SDK asks the user to approve, and the wallet operations built on approvals.
//
// An `Approver` is the widget (or a test double): it shows the request, takes the PIN in
// its own origin, computes the digest itself from what it showed (operationForApproval)
// and returns only sealed envelopes. The SDK never sees a PIN.

import { getAddress } from "viem";
import type { Account, ApiClient, Intent, PrepareResponse, TxResponse } from "./api.js";
import { KeysteadError } from "./api.js";
import {
  intentFields,
  randomBytes,
  typedDataHash,
  type Operation,
  type SealedValue,
  type TypedData,
} from "./crypto.js";
import { toHex } from "./bytes.js";

interface AccountRef {
  appId: string;
  accountId: string;
  /** The account's EIP-55 address, for display. */
  address: string;
  /** The account's network id (`/v1/app` networks[].id). */
  network: string;
}

/** One approval the user is asked for. Every field is what the widget shows and digests. */
export type ApprovalRequest =
  | (AccountRef & {
      purpose: "sign_message";
      /** The message bytes, `0x` + lowercase hex. */
      message: string;
      /** Whether the dApp gave text (`utf8`) or bytes (`hex`): display only. */
      encoding: "utf8" | "hex";
    })
  | (AccountRef & { purpose: "sign_typed_data"; typedData: TypedData })
  | (AccountRef & {
      purpose: "sign_transaction";
      /** Exactly as `/v1/tx/prepare` returned it. */
      intent: Intent;
      /** `gasLimit × maxFeePerGas` in wei: the most the fee can be. */
      maxFee: string;
      /** True for `eth_sendTransaction`/`send()`, false for `eth_signTransaction`. */
      broadcast: boolean;
    })
  | { purpose: "create_wallet"; appId: string; userId: string }
  | { purpose: "export"; appId: string; walletId: string }
  | { purpose: "change_pin"; appId: string; walletId: string }
  | { purpose: "recover"; appId: string; walletId: string };

export type ApprovalPurpose = ApprovalRequest["purpose"];

/** What the approver returns for each purpose: sealed envelopes and public keys only. */
export interface ApprovalResults {
  sign_message: { pin: SealedValue };
  sign_typed_data: { pin: SealedValue };
  sign_transaction: { pin: SealedValue };
  /** `clientKey`: the widget's one-time key; the recovery kit is sealed to it. */
  create_wallet: { pin: SealedValue; clientKey: string };
  export: { pin: SealedValue; clientKey: string };
  change_pin: { pin: SealedValue; newPin: SealedValue };
  recover: { recovery: SealedValue; newPin: SealedValue };
}

export type ApprovalResult<R extends ApprovalRequest> = ApprovalResults[R["purpose"]];

/** The failed attempt an approval is asked again after (wrong PIN, expired envelope...). */
export interface ApprovalRetry {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

export type ApprovalOutcome = { ok: true } | { ok: false; error: { code: string; message: string; details: Record<string, unknown> } };

export interface Approver {
  /** Asks the user. Resolves with sealed envelopes, or rejects (`UserRejectedError`). */
  approve<R extends ApprovalRequest>(request: R, retry?: ApprovalRetry): Promise<ApprovalResult<R>>;
  /** Tells the UI how the approved operation ended, so it can close or show an error. */
  complete?(request: ApprovalRequest, outcome: ApprovalOutcome): void;
  /**
   * Shows the user a value sealed to the one-time `clientKey` this approval returned (the
   * recovery kit after create_wallet, the mnemonic after export). Only the approver holds
   * the private key, so only it can open the value. Resolves once the user is done.
   */
  reveal?(request: ApprovalRequest, kind: "recoveryKit" | "mnemonic", sealed: SealedValue): Promise<void>;
}

/** The user declined (or closed the widget). Providers map it to EIP-1193 error 4001. */
export class UserRejectedError extends KeysteadError {
  constructor(message = "the user rejected the request") {
    super("user_rejected", message);
    this.name = "UserRejectedError";
  }
}

export function isUserRejection(e: unknown): boolean {
  return (
    e instanceof UserRejectedError ||
    (e instanceof KeysteadError && e.code === "user_rejected") ||
    (typeof e === "object" && e !== null && (e as { code?: unknown }).code === 4001)
  );
}

/**
 * The operations (digest inputs) an approval's envelopes carry, given the one-time
 * `clientKey` where the purpose has one. The widget seals `pin` with `operations[0]`
 * and, for change_pin/recover, `newPin` with the `new_pin` operation `operations[1]`.
 */
export function operationsForApproval(request: ApprovalRequest, clientKey?: string): Operation[] {
  switch (request.purpose) {
    case "sign_message":
      return [{ purpose: "sign_message", appId: request.appId, accountId: request.accountId, message: request.message }];
    case "sign_typed_data":
      return [
        {
          purpose: "sign_typed_data",
          appId: request.appId,
          accountId: request.accountId,
          hash: typedDataHash(request.typedData),
        },
      ];
    case "sign_transaction":
      return [
        { purpose: "sign_transaction", appId: request.appId, accountId: request.accountId, intent: intentFields(request.intent) },
      ];
    case "create_wallet":
      if (!clientKey) throw new KeysteadError("invalid_request", "create_wallet needs the clientKey");
      return [{ purpose: "create_wallet", appId: request.appId, userId: request.userId, clientKey }];
    case "export":
      if (!clientKey) throw new KeysteadError("invalid_request", "export needs the clientKey");
      return [{ purpose: "export", appId: request.appId, walletId: request.walletId, clientKey }];
    case "change_pin":
      return [
        { purpose: "change_pin", appId: request.appId, walletId: request.walletId },
        { purpose: "new_pin", appId: request.appId, walletId: request.walletId },
      ];
    case "recover":
      return [
        { purpose: "recover", appId: request.appId, walletId: request.walletId },
        { purpose: "new_pin", appId: request.appId, walletId: request.walletId },
      ];
  }
}

/** Codes after which the user may try again with a new envelope. */
function retryable(e: KeysteadError): boolean {
  switch (e.code) {
    case "wrong_pin":
    case "weak_pin":
    case "wrong_recovery_code":
      return true;
    case "envelope_rejected":
      // undecryptable: the enclave restarted with a new key (the widget re-attests);
      // expired: the user took too long. Anything else is not the user's doing.
      return e.details.reason === "undecryptable" || e.details.reason === "expired";
    default:
      return false;
  }
}

/** Most approvals one operation asks for (the PIN locks after five wrong tries anyway). */
export const MAX_APPROVAL_ATTEMPTS = 5;

/**
 * Asks for approval and performs the call with the envelopes; on a wrong PIN (or another
 * retryable refusal) asks again with the error, so the UI can say "N tries left".
 */
export async function withApproval<R extends ApprovalRequest, T>(
  approver: Approver,
  request: R,
  call: (result: ApprovalResult<R>) => Promise<T>,
): Promise<T> {
  let retry: ApprovalRetry | undefined;
  for (let attempt = 1; ; attempt++) {
    const result = await approver.approve(request, retry);
    try {
      const value = await call(result);
      approver.complete?.(request, { ok: true });
      return value;
    } catch (e) {
      const err =
        e instanceof KeysteadError ? e : new KeysteadError("internal", (e as Error)?.message ?? "operation failed");
      if (attempt < MAX_APPROVAL_ATTEMPTS && retryable(err)) {
        retry = { code: err.code, message: err.message, details: err.details };
        continue;
      }
      approver.complete?.(request, { ok: false, error: err.toJSON() });
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Wallet operations shared by the Keystead class and the EIP-1193 provider
// ---------------------------------------------------------------------------------------

export type WalletApi = Pick<ApiClient, "signMessage" | "signTypedData" | "prepareTx" | "signTx" | "sendTx">;

export interface OperationContext {
  api: WalletApi;
  approver: Approver;
  appId: string;
}

function ref(ctx: OperationContext, account: Account): AccountRef {
  return { appId: ctx.appId, accountId: account.id, address: account.address, network: account.network };
}

export async function signMessageWithApproval(
  ctx: OperationContext,
  account: Account,
  message: string,
  encoding: "utf8" | "hex",
): Promise<string> {
  const request = { ...ref(ctx, account), purpose: "sign_message" as const, message, encoding };
  return withApproval(ctx.approver, request, ({ pin }) =>
    ctx.api.signMessage({ accountId: account.id, message, encoding: "hex", pin }),
  );
}

export async function signTypedDataWithApproval(ctx: OperationContext, account: Account, typedData: TypedData): Promise<string> {
  // Hash first: malformed typed data fails here, before the user is asked anything.
  typedDataHash(typedData);
  const request = { ...ref(ctx, account), purpose: "sign_typed_data" as const, typedData };
  return withApproval(ctx.approver, request, ({ pin }) =>
    ctx.api.signTypedData({ accountId: account.id, typedData: typedData as unknown as Record<string, unknown>, pin }),
  );
}

export interface TransactionRequest {
  to: string;
  /** Wei as a decimal string or bigint; default 0. */
  value?: string | bigint;
  /** `0x`-hex call data. */
  data?: string;
}

function normaliseTx(tx: TransactionRequest): { to: string; value: string; data: string } {
  let to: string;
  try {
    to = getAddress(tx.to);
  } catch {
    throw new KeysteadError("invalid_request", "`to` is not an address");
  }
  const value = tx.value === undefined ? "0" : BigInt(tx.value).toString(10);
  if (value.startsWith("-")) throw new KeysteadError("invalid_request", "`value` is negative");
  const data = (tx.data ?? "0x").toLowerCase();
  if (!/^0x([0-9a-f]{2})*$/.test(data)) throw new KeysteadError("invalid_request", "`data` is not 0x-hex");
  return { to, value, data };
}

/** Refuses an intent that is not the transaction asked for: the server must not swap it. */
function checkIntent(prepared: PrepareResponse, account: Account, tx: { to: string; value: string; data: string }, chainId?: number) {
  const i = prepared.intent;
  const same =
    i.to.toLowerCase() === tx.to.toLowerCase() &&
    i.value === tx.value &&
    i.data.toLowerCase() === tx.data &&
    i.from.toLowerCase() === account.address.toLowerCase() &&
    i.network === account.network &&
    (chainId === undefined || i.chainId === chainId);
  if (!same) throw new KeysteadError("intent_mismatch", "the prepared transaction differs from the one requested");
}

export async function transactionWithApproval(
  ctx: OperationContext,
  account: Account,
  tx: TransactionRequest,
  options: { broadcast: true; chainId?: number },
): Promise<TxResponse>;
export async function transactionWithApproval(
  ctx: OperationContext,
  account: Account,
  tx: TransactionRequest,
  options: { broadcast: false; chainId?: number },
): Promise<{ signedTransaction: string; hash: string }>;
export async function transactionWithApproval(
  ctx: OperationContext,
  account: Account,
  tx: TransactionRequest,
  options: { broadcast: boolean; chainId?: number },
): Promise<TxResponse | { signedTransaction: string; hash: string }> {
  const wanted = normaliseTx(tx);
  const prepared = await ctx.api.prepareTx({
    accountId: account.id,
    to: wanted.to,
    value: wanted.value,
    ...(wanted.data !== "0x" ? { data: wanted.data } : {}),
  });
  checkIntent(prepared, account, wanted, options.chainId);
  const request = {
    ...ref(ctx, account),
    purpose: "sign_transaction" as const,
    intent: prepared.intent,
    maxFee: prepared.maxFee,
    broadcast: options.broadcast,
  };
  return withApproval<typeof request, TxResponse | { signedTransaction: string; hash: string }>(ctx.approver, request, ({ pin }) => {
    const body = { intent: prepared.intent, pin, accountId: account.id };
    // A fresh key per attempt: each attempt carries a new envelope (a new body).
    return options.broadcast ? ctx.api.sendTx(body, toHex(randomBytes(16))) : ctx.api.signTx(body);
  });
}
