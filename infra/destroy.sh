#!/usr/bin/env bash
# Remove a byom deployment: every object in its data bucket (inputs, outputs,
# error reports), the stack byom-<stage> with everything it created, the
# endpoint's log group, and this stage's files in the bootstrap bucket (the
# bucket itself too once no other stage uses it).
#
#   infra/destroy.sh [--stage NAME] [--region REGION] [--yes]
set -euo pipefail

stage=dev
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
assume_yes=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage) stage="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    --yes | -y) assume_yes=true; shift ;;
    -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

fail() {
  echo "destroy: $*" >&2
  exit 1
}

command -v aws > /dev/null || fail "the AWS CLI is not installed"
if [[ -z "$region" ]]; then
  region="$(aws configure get region || true)"
fi
[[ -n "$region" ]] || fail "no region: pass --region or set AWS_REGION"
export AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
account="$(aws sts get-caller-identity --query Account --output text)" \
  || fail "no usable AWS credentials"
stack="byom-$stage"
bootstrap="byom-bootstrap-$account-$region"

bucket=""
if aws cloudformation describe-stacks --stack-name "$stack" > /dev/null 2>&1; then
  bucket="$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='DataBucketName'].OutputValue" --output text)"
  [[ "$bucket" == None ]] && bucket=""
else
  echo "No stack $stack in $region; cleaning up what may be left."
fi

if [[ "$assume_yes" != true ]]; then
  echo "This deletes stack $stack in account $account, region $region,"
  [[ -n "$bucket" ]] && echo "and every object in s3://$bucket (your inputs and outputs)."
  read -r -p "Type the stage name ($stage) to go on: " answer
  [[ "$answer" == "$stage" ]] || fail "not confirmed; nothing deleted"
fi

# A bucket must be empty, and free of unfinished uploads, before it can go.
empty_bucket() {
  local name="$1" prefix="${2:-}"
  aws s3 rm --only-show-errors --recursive "s3://$name/$prefix"
  aws s3api list-multipart-uploads --bucket "$name" --prefix "$prefix" \
    --query 'Uploads[].[Key, UploadId]' --output text \
    | while read -r key upload_id; do
        [[ -z "$key" || "$key" == None ]] && continue
        aws s3api abort-multipart-upload --bucket "$name" --key "$key" --upload-id "$upload_id"
      done
}

if [[ -n "$bucket" ]] && aws s3api head-bucket --bucket "$bucket" > /dev/null 2>&1; then
  echo "Emptying s3://$bucket"
  empty_bucket "$bucket"
fi

if aws cloudformation describe-stacks --stack-name "$stack" > /dev/null 2>&1; then
  echo "Deleting stack $stack (10-20 minutes: Batch and the endpoint go last)"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
fi

# SageMaker creates the endpoint's log groups itself, outside the stack: the
# endpoint's, and in scale-to-zero mode its inference component's.
for group in "/aws/sagemaker/Endpoints/byom-$stage-model" \
  "/aws/sagemaker/InferenceComponents/byom-$stage-model-ic"; do
  aws logs delete-log-group --log-group-name "$group" > /dev/null 2>&1 || true
done

if aws s3api head-bucket --bucket "$bootstrap" > /dev/null 2>&1; then
  echo "Removing s3://$bootstrap/byom-$stage/"
  empty_bucket "$bootstrap" "byom-$stage/"
  remaining="$(aws s3api list-objects-v2 --bucket "$bootstrap" --max-items 1 \
    --query 'Contents[0].Key' --output text)"
  if [[ "$remaining" == None ]]; then
    aws s3api delete-bucket --bucket "$bootstrap"
    echo "Deleted the bootstrap bucket $bootstrap"
  fi
fi
echo "byom stage $stage is gone from $region."
